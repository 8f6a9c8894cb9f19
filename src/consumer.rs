//! Per-partition ordered workers behind one poll loop, shared by `run` and `replay`.
//!
//! - Each partition gets one worker task and a bounded queue: partitions run in parallel,
//!   each strictly in order, and at most `queue + batch` records per partition are held.
//! - The poll loop never waits for a worker. [`Workers::offer`] queues a record, or, when the
//!   partition's queue is full, keeps it aside and answers [`Offer::Full`]: the caller pauses
//!   that partition on the consumer, and resumes it when [`Workers::refill`] has moved the
//!   records kept aside into the queue. One slow partition therefore never stalls the others,
//!   a rebalance, or `max.poll.interval.ms`. What is kept aside is at most what librdkafka had
//!   already fetched for the partition when it was paused.
//! - A worker takes up to `max_batch_records` or whatever arrives within `batch_window`, hands
//!   the batch to the [`Pipeline`], and reports the batch's last offset through `on_batch` only
//!   after the pipeline has made every record durable or dead-lettered.
//! - [`Workers::stop`] (revocation, shutdown) lets in-flight batches finish and abandons
//!   queued records (they are re-read: at-least-once). [`Workers::finish`] (replay reached its
//!   end) processes everything queued first. The two are named, and decided, here on purpose:
//!   callers say which end they mean instead of setting flags.
//! - A worker that does not end within the timeout is fenced (it reports no further batch) and
//!   aborted, and the next worker of its partition starts only after it has ended, so a
//!   partition never has two writers.
//! - A worker that fails or panics is fatal: [`Workers::cancel`] is cancelled, the error is
//!   kept for [`Workers::fatal`], and the batch it held is never reported (its offset is not
//!   stored or committed).

use std::collections::{HashMap, VecDeque};
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::FutureExt;
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

/// What became of an offered record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offer {
    /// Queued for its partition's worker.
    Queued,
    /// The partition's queue just filled up: the record is kept aside, in order, and the
    /// caller pauses the partition until [`Workers::refill`] names it.
    Full,
    /// Kept aside behind earlier records (the partition is already paused).
    Held,
    /// An offset at or below one already accepted for this partition (a re-fetch): dropped.
    Duplicate,
}

type Key = (String, i32);

/// The flags one worker task shares with the poll side.
#[derive(Default)]
struct Flags {
    /// End after the in-flight batch (revocation, shutdown).
    stop: AtomicBool,
    /// Report nothing more: a newer worker may own the partition.
    fenced: AtomicBool,
    /// The task has ended (set when it is dropped, whatever the cause).
    ended: AtomicBool,
}

struct Handle {
    tx: mpsc::Sender<Record>,
    /// Records kept aside while the queue is full, in offset order.
    pending: VecDeque<Record>,
    /// The offset after the last record accepted.
    next: i64,
    flags: Arc<Flags>,
    /// Cancelled with `stop`: a batch waiting out DynamoDB throttling gives up (not stored).
    halt: CancellationToken,
    done: std::sync::mpsc::Receiver<()>,
    abort: tokio::task::AbortHandle,
}

pub struct Workers<A: DynamoApi> {
    pipeline: Arc<Pipeline<A>>,
    settings: WorkerSettings,
    on_batch: OnBatch,
    handles: Mutex<HashMap<Key, Handle>>,
    /// Workers that did not end in time, by partition: the next worker waits for them.
    retired: Mutex<HashMap<Key, Arc<Flags>>>,
    fatal: Mutex<Option<FatalError>>,
    live: Arc<AtomicUsize>,
    /// Cancelled on the first fatal error.
    pub cancel: CancellationToken,
}

/// Marks a worker task ended when it is dropped: at its end, on a panic, or when aborted.
struct Ended {
    flags: Arc<Flags>,
    live: Arc<AtomicUsize>,
    _done: std::sync::mpsc::Sender<()>,
}

impl Drop for Ended {
    fn drop(&mut self) {
        self.flags.ended.store(true, Ordering::Release);
        self.live.fetch_sub(1, Ordering::AcqRel);
    }
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
            retired: Mutex::new(HashMap::new()),
            fatal: Mutex::new(None),
            live: Arc::new(AtomicUsize::new(0)),
            cancel,
        })
    }

    /// Queue a record for its partition's worker without waiting. On [`Offer::Full`] the
    /// record is kept, and the caller pauses the partition (see [`Workers::refill`]); records
    /// that still arrive meanwhile are kept behind it ([`Offer::Held`]).
    pub fn offer(self: &Arc<Self>, rec: Record) -> Offer {
        let mut handles = self.handles.lock().expect("workers lock");
        let key = (rec.topic.clone(), rec.partition);
        let h = handles
            .entry(key)
            .or_insert_with_key(|(t, p)| self.spawn(t.clone(), *p, rec.offset));
        if rec.offset < h.next {
            return Offer::Duplicate;
        }
        h.next = rec.offset + 1;
        if !h.pending.is_empty() {
            h.pending.push_back(rec);
            return Offer::Held;
        }
        match h.tx.try_send(rec) {
            Ok(()) => Offer::Queued,
            Err(mpsc::error::TrySendError::Full(rec)) => {
                h.pending.push_back(rec);
                Offer::Full
            }
            // The worker has ended: a fatal error (the stream stops without storing this
            // offset) or cancellation. The record is re-read by whoever resumes.
            Err(mpsc::error::TrySendError::Closed(_)) => Offer::Queued,
        }
    }

    /// Move records kept aside into their queues, as far as there is room. Returns the
    /// partitions that have nothing kept aside any more: the caller resumes them.
    pub fn refill(&self) -> Vec<Key> {
        let mut handles = self.handles.lock().expect("workers lock");
        let mut resumed = Vec::new();
        for (key, h) in handles.iter_mut().filter(|(_, h)| !h.pending.is_empty()) {
            while let Some(rec) = h.pending.pop_front() {
                match h.tx.try_send(rec) {
                    Ok(()) => {}
                    Err(mpsc::error::TrySendError::Full(rec)) => {
                        h.pending.push_front(rec);
                        break;
                    }
                    Err(mpsc::error::TrySendError::Closed(_)) => h.pending.clear(),
                }
            }
            if h.pending.is_empty() {
                resumed.push(key.clone());
            }
        }
        resumed
    }

    /// Whether `partition` of `topic` has records kept aside (it is, or should be, paused).
    pub fn is_full(&self, topic: &str, partition: i32) -> bool {
        self.handles
            .lock()
            .expect("workers lock")
            .get(&(topic.to_string(), partition))
            .is_some_and(|h| !h.pending.is_empty())
    }

    fn spawn(self: &Arc<Self>, topic: String, partition: i32, first: i64) -> Handle {
        let (tx, rx) = mpsc::channel(self.settings.queue);
        let (done_tx, done) = std::sync::mpsc::channel();
        let flags = Arc::new(Flags::default());
        let before = self
            .retired
            .lock()
            .expect("retired lock")
            .remove(&(topic.clone(), partition));
        let me = self.clone();
        let halt = self.cancel.child_token();
        let halted = halt.clone();
        let ended = Ended {
            flags: flags.clone(),
            live: self.live.clone(),
            _done: done_tx,
        };
        self.live.fetch_add(1, Ordering::AcqRel);
        let task = tokio::spawn(async move {
            let ended = ended;
            // A late predecessor is fenced and aborted; it ends at its next await point.
            if let Some(before) = before {
                while !before.ended.load(Ordering::Acquire) {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
            let work = AssertUnwindSafe(me.work(&topic, partition, rx, &ended.flags, &halted));
            let failed = match work.catch_unwind().await {
                Ok(Ok(())) => None,
                Ok(Err(e)) => Some(e),
                Err(panic) => {
                    let what = panic
                        .downcast_ref::<&str>()
                        .map(|s| s.to_string())
                        .or_else(|| panic.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "a panic".into());
                    Some(FatalError::new(format!(
                        "the worker of {topic}[{partition}] panicked ({what}); its batch is not committed"
                    )))
                }
            };
            if let Some(e) = failed {
                tracing::error!(topic, partition, error = %e, "fatal error: stopping");
                me.fatal.lock().expect("fatal lock").get_or_insert(e);
                me.cancel.cancel();
            }
            drop(ended);
        });
        Handle {
            tx,
            pending: VecDeque::new(),
            next: first,
            flags,
            halt,
            done,
            abort: task.abort_handle(),
        }
    }

    async fn work(
        &self,
        topic: &str,
        partition: i32,
        mut rx: mpsc::Receiver<Record>,
        flags: &Flags,
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
            if flags.stop.load(Ordering::Acquire) {
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
            if flags.fenced.load(Ordering::Acquire) {
                return Ok(());
            }
            let last = batch.last().map(|r| r.offset).unwrap_or(-1);
            (self.on_batch)(topic, partition, last, &stats);
            batch.clear();
            if flags.stop.load(Ordering::Acquire) {
                return Ok(());
            }
        }
    }

    /// Stop the workers of the matching partitions: in-flight batches complete, queued records
    /// are abandoned. Blocks (without async) up to `timeout`, so it can run inside librdkafka's
    /// rebalance callback. Returns the partitions that did not finish in time; those are
    /// fenced and aborted.
    pub fn stop(&self, which: impl Fn(&str, i32) -> bool, timeout: Duration) -> Vec<Key> {
        self.end(which, timeout, true)
    }

    /// Close the matching partitions' queues and let their workers process everything queued
    /// (records kept aside too).
    pub fn finish(&self, which: impl Fn(&str, i32) -> bool, timeout: Duration) -> Vec<Key> {
        self.end(which, timeout, false)
    }

    fn take(&self, which: impl Fn(&str, i32) -> bool) -> Vec<(Key, Handle)> {
        let mut handles = self.handles.lock().expect("workers lock");
        let keys: Vec<_> = handles
            .keys()
            .filter(|(t, p)| which(t, *p))
            .cloned()
            .collect();
        keys.into_iter()
            .filter_map(|k| handles.remove(&k).map(|h| (k, h)))
            .collect()
    }

    fn end(&self, which: impl Fn(&str, i32) -> bool, timeout: Duration, abandon: bool) -> Vec<Key> {
        let taken = self.take(which);
        let deadline = Instant::now() + timeout;
        let mut late = Vec::new();
        let mut waiting = Vec::with_capacity(taken.len());
        for (key, h) in taken {
            if abandon {
                h.flags.stop.store(true, Ordering::Release);
                h.halt.cancel();
            } else {
                deliver(h.tx, h.pending);
            }
            waiting.push((key, h.done, h.flags, h.abort));
        }
        for (key, done, flags, abort) in waiting {
            let left = deadline.saturating_duration_since(Instant::now());
            if let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = done.recv_timeout(left) {
                flags.fenced.store(true, Ordering::Release);
                abort.abort();
                self.retired
                    .lock()
                    .expect("retired lock")
                    .insert(key.clone(), flags);
                late.push(key);
            }
        }
        late
    }

    /// Close the matching partitions' queues without waiting; their workers process what is
    /// queued (records kept aside too) and end. See [`Workers::wait_all`].
    pub fn close(&self, which: impl Fn(&str, i32) -> bool) {
        for (_, h) in self.take(which) {
            deliver(h.tx, h.pending);
        }
    }

    /// Wait until every worker has ended.
    pub async fn wait_all(&self) {
        while self.live.load(Ordering::Acquire) > 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Partitions that currently have a worker.
    pub fn active(&self) -> Vec<Key> {
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

/// Send what was kept aside after what is queued, then close the queue. Needs a Tokio
/// runtime when something was kept aside (the poll loop's); without one it is dropped and
/// re-read, like an abandoned queue.
fn deliver(tx: mpsc::Sender<Record>, pending: VecDeque<Record>) {
    if pending.is_empty() {
        return;
    }
    match tokio::runtime::Handle::try_current() {
        Ok(rt) => {
            rt.spawn(async move {
                for rec in pending {
                    if tx.send(rec).await.is_err() {
                        break;
                    }
                }
            });
        }
        Err(_) => tracing::debug!(
            records = pending.len(),
            "no runtime: records kept aside are re-read"
        ),
    }
}

#[cfg(test)]
#[path = "consumer/tests.rs"]
mod tests;
