//! Per-partition ordered workers behind one poll loop, shared by `run` and `replay`.
//!
//! - Each partition gets one worker task and a bounded queue: partitions run in parallel,
//!   each strictly in order, and at most `queue + batch` records per partition are held.
//! - A worker takes up to `max_batch_records` or whatever arrives within `batch_window`, hands
//!   the batch to the [`Pipeline`], and reports the batch's last offset through `on_batch` only
//!   after the pipeline has made every record durable or dead-lettered.
//! - [`Workers::stop`] (revocation, shutdown) lets in-flight batches finish and abandons
//!   queued records (they are re-read: at-least-once). [`Workers::finish`] (replay reached its
//!   end) processes everything queued first. The two are named, and decided, here on purpose:
//!   callers say which end they mean instead of setting flags.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::error::FatalError;
use crate::kafka::Record;
use crate::pipeline::{BatchStats, Pipeline};
use crate::sink::DynamoApi;

/// Called after each durable batch with (topic, partition, last offset, stats).
pub type OnBatch = Arc<dyn Fn(&str, i32, i64, &BatchStats) + Send + Sync>;

#[derive(Debug, Clone, Copy)]
pub struct WorkerSettings {
    pub queue: usize,
    pub max_batch: usize,
    pub window: Duration,
}

struct Handle {
    tx: mpsc::Sender<Record>,
    stop: Arc<AtomicBool>,
    /// Cancelled with `stop`: a batch waiting out DynamoDB throttling gives up (not stored).
    halt: CancellationToken,
    done: std::sync::mpsc::Receiver<()>,
}

pub struct Workers<A: DynamoApi> {
    pipeline: Arc<Pipeline<A>>,
    settings: WorkerSettings,
    on_batch: OnBatch,
    handles: Mutex<HashMap<(String, i32), Handle>>,
    fatal: Mutex<Option<FatalError>>,
    live: AtomicUsize,
    /// Cancelled on the first fatal error.
    pub cancel: CancellationToken,
}

impl<A: DynamoApi> Workers<A> {
    pub fn new(
        pipeline: Arc<Pipeline<A>>,
        settings: WorkerSettings,
        on_batch: OnBatch,
        cancel: CancellationToken,
    ) -> Arc<Self> {
        Arc::new(Workers {
            pipeline,
            settings,
            on_batch,
            handles: Mutex::new(HashMap::new()),
            fatal: Mutex::new(None),
            live: AtomicUsize::new(0),
            cancel,
        })
    }

    /// Queue a record for its partition's worker, waiting while the queue is full.
    pub async fn dispatch(self: &Arc<Self>, rec: Record) {
        let tx = {
            let mut handles = self.handles.lock().expect("workers lock");
            let key = (rec.topic.clone(), rec.partition);
            match handles.get(&key) {
                Some(h) => h.tx.clone(),
                None => {
                    let h = self.spawn(key.0.clone(), key.1);
                    let tx = h.tx.clone();
                    handles.insert(key, h);
                    tx
                }
            }
        };
        // A closed queue means the partition was just revoked: the record will be re-read.
        let _ = tx.send(rec).await;
    }

    fn spawn(self: &Arc<Self>, topic: String, partition: i32) -> Handle {
        let (tx, rx) = mpsc::channel(self.settings.queue);
        let (done_tx, done) = std::sync::mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let me = self.clone();
        let flag = stop.clone();
        let halt = self.cancel.child_token();
        let halted = halt.clone();
        self.live.fetch_add(1, Ordering::AcqRel);
        tokio::spawn(async move {
            let _done = done_tx; // dropped when the worker ends, whatever the cause
            if let Err(e) = me.work(&topic, partition, rx, &flag, &halted).await {
                tracing::error!(topic, partition, error = %e, "fatal error: stopping");
                me.fatal.lock().expect("fatal lock").get_or_insert(e);
                me.cancel.cancel();
            }
            me.live.fetch_sub(1, Ordering::AcqRel);
        });
        Handle {
            tx,
            stop,
            halt,
            done,
        }
    }

    async fn work(
        &self,
        topic: &str,
        partition: i32,
        mut rx: mpsc::Receiver<Record>,
        stop: &AtomicBool,
        halt: &CancellationToken,
    ) -> Result<(), FatalError> {
        let s = self.settings;
        let mut batch: Vec<Record> = Vec::with_capacity(s.max_batch);
        loop {
            let first = tokio::select! {
                r = rx.recv() => r,
                _ = self.cancel.cancelled() => None,
            };
            let Some(first) = first else { return Ok(()) };
            if stop.load(Ordering::Acquire) {
                return Ok(());
            }
            batch.push(first);
            let deadline = tokio::time::Instant::now() + s.window;
            while batch.len() < s.max_batch {
                match rx.try_recv() {
                    Ok(r) => batch.push(r),
                    Err(mpsc::error::TryRecvError::Disconnected) => break,
                    Err(mpsc::error::TryRecvError::Empty) => {
                        match tokio::time::timeout_at(deadline, rx.recv()).await {
                            Ok(Some(r)) => batch.push(r),
                            _ => break,
                        }
                    }
                }
            }
            let Some(stats) = self.pipeline.process_until(&batch, halt).await? else {
                return Ok(()); // stopped while DynamoDB throttled: not stored, re-read
            };
            let last = batch.last().map(|r| r.offset).unwrap_or(-1);
            (self.on_batch)(topic, partition, last, &stats);
            batch.clear();
            if stop.load(Ordering::Acquire) {
                return Ok(());
            }
        }
    }

    /// Stop the workers of the matching partitions: in-flight batches complete, queued records
    /// are abandoned. Blocks (without async) up to `timeout`, so it can run inside librdkafka's
    /// rebalance callback. Returns the partitions that did not finish in time.
    pub fn stop(&self, which: impl Fn(&str, i32) -> bool, timeout: Duration) -> Vec<(String, i32)> {
        self.end(which, timeout, true)
    }

    /// Close the matching partitions' queues and let their workers process everything queued.
    pub fn finish(
        &self,
        which: impl Fn(&str, i32) -> bool,
        timeout: Duration,
    ) -> Vec<(String, i32)> {
        self.end(which, timeout, false)
    }

    fn end(
        &self,
        which: impl Fn(&str, i32) -> bool,
        timeout: Duration,
        abandon: bool,
    ) -> Vec<(String, i32)> {
        let taken: Vec<((String, i32), Handle)> = {
            let mut handles = self.handles.lock().expect("workers lock");
            let keys: Vec<_> = handles
                .keys()
                .filter(|(t, p)| which(t, *p))
                .cloned()
                .collect();
            keys.into_iter()
                .filter_map(|k| handles.remove(&k).map(|h| (k, h)))
                .collect()
        };
        let deadline = Instant::now() + timeout;
        let mut late = Vec::new();
        let mut waiting = Vec::with_capacity(taken.len());
        for (key, h) in taken {
            if abandon {
                h.stop.store(true, Ordering::Release);
                h.halt.cancel();
            }
            drop(h.tx);
            waiting.push((key, h.done));
        }
        for (key, done) in waiting {
            let left = deadline.saturating_duration_since(Instant::now());
            if let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = done.recv_timeout(left) {
                late.push(key);
            }
        }
        late
    }

    /// Close the matching partitions' queues without waiting; their workers process what is
    /// queued and end. See [`Workers::wait_all`].
    pub fn close(&self, which: impl Fn(&str, i32) -> bool) {
        let mut handles = self.handles.lock().expect("workers lock");
        handles.retain(|(t, p), _| !which(t, *p));
    }

    /// Wait until every worker has ended.
    pub async fn wait_all(&self) {
        while self.live.load(Ordering::Acquire) > 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Partitions that currently have a worker.
    pub fn active(&self) -> Vec<(String, i32)> {
        self.handles
            .lock()
            .expect("workers lock")
            .keys()
            .cloned()
            .collect()
    }

    /// The first fatal error, if any.
    pub fn fatal(&self) -> Option<FatalError> {
        self.fatal.lock().expect("fatal lock").clone()
    }
}
