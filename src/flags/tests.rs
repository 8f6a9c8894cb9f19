use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::file::{parse, set_stage};
use super::*;

/// A fresh directory under the system temp dir.
fn temp_dir(name: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let d = std::env::temp_dir().join(format!(
        "cutover-flags-unit-{name}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn declared(paths: &[&str]) -> HashSet<String> {
    paths.iter().map(|p| p.to_string()).collect()
}

#[test]
fn stages_round_trip_through_str_serde_and_launchdarkly() {
    let names = ["off", "dualwrite", "shadow", "live", "rampdown", "complete"];
    for (s, name) in Stage::ALL.into_iter().zip(names) {
        assert_eq!(s.to_string(), name);
        assert_eq!(name.parse::<Stage>().unwrap(), s);
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(json, format!("\"{name}\""));
        assert_eq!(serde_json::from_str::<Stage>(&json).unwrap(), s);
        let ld: launchdarkly_server_sdk::Stage = s.into();
        assert_eq!(ld.to_string(), name);
        assert_eq!(Stage::try_from(ld).unwrap(), s);
    }
    assert!(Stage::ALL.windows(2).all(|w| w[0] < w[1]), "rollout order");
    for bad in ["", "Off", "dual-write", "shadw", " live"] {
        let err = bad.parse::<Stage>().unwrap_err();
        assert!(
            matches!(err, FlagError::UnknownStage(ref s) if s == bad),
            "{err}"
        );
    }
    let err = serde_json::from_str::<Stage>("\"shadw\"").unwrap_err();
    assert!(err.to_string().contains("unknown stage `shadw`"), "{err}");
}

#[test]
fn file_problems_are_all_reported_with_their_keys() {
    let text = r#"
        default_check_ratio = 2.0
        colour = "blue"
        [paths."message.read"]
        stage = "shadw"
        check_ratio = -0.1
        tenants = { acme = "live", globex = "nope", "big co" = 3 }
        extra = true
        [paths."message.write"]
        stage = "dualwrite"
        [paths."conversation.list"]
        stage = "off"
    "#;
    let issues = parse(
        text,
        false,
        Some(&declared(&["message.read", "message.write"])),
    )
    .unwrap_err();
    let mut keys: Vec<&str> = issues.iter().map(|i| i.key.as_str()).collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "colour",
            "default_check_ratio",
            "paths.\"conversation.list\"",
            "paths.\"message.read\".check_ratio",
            "paths.\"message.read\".extra",
            "paths.\"message.read\".stage",
            "paths.\"message.read\".tenants.\"big co\"",
            "paths.\"message.read\".tenants.globex",
        ]
    );
    let msg = |k: &str| {
        issues
            .iter()
            .find(|i| i.key == k)
            .map(|i| i.message.clone())
            .unwrap()
    };
    assert!(msg("paths.\"message.read\".stage").contains("unknown stage `shadw`"));
    assert!(msg("paths.\"conversation.list\"").contains("not declared"));
    // Syntax errors name the file and carry the parser's position.
    let issues = parse("[paths\nstage = 1", false, None).unwrap_err();
    assert_eq!(issues[0].key, "file");
}

#[test]
fn json_files_parse_like_toml() {
    let text = r#"{"default_check_ratio": 0.5,
        "paths": {"message.read": {"stage": "live", "tenants": {"acme": "off"}}}}"#;
    let st = parse(text, true, Some(&declared(&["message.read"]))).unwrap();
    assert_eq!(st.stage_of("message.read", None), Some(Stage::Live));
    assert_eq!(st.stage_of("message.read", Some("acme")), Some(Stage::Off));
    let issues = parse(
        r#"{"paths": {"message.read": {"stage": "bogus"}}}"#,
        true,
        None,
    )
    .unwrap_err();
    assert_eq!(issues[0].key, "paths.\"message.read\".stage");
}

#[test]
fn tenant_override_beats_path_stage_beats_default() {
    let dir = temp_dir("precedence");
    let file = dir.join("flags.toml");
    std::fs::write(
        &file,
        r#"
        default_check_ratio = 0.0
        [paths."message.read"]
        stage = "shadow"
        check_ratio = 1.0
        tenants = { acme = "live", globex = "off" }
        [paths."message.write"]
        tenants = { acme = "dualwrite" }
        "#,
    )
    .unwrap();
    let flags = Flags::file(
        &file,
        ["message.read", "message.write", "conversation.list"].map(String::from),
        Duration::from_secs(1),
    )
    .unwrap();
    let d = |path: &str, tenant: Option<&str>| {
        let ctx = FlagContext {
            key: "req-1".into(),
            tenant: tenant.map(String::from),
        };
        let d = flags.decide(path, &ctx).unwrap();
        (d.stage, d.origin_of_stage)
    };
    assert_eq!(
        d("message.read", Some("acme")),
        (
            Stage::Live,
            "file paths.\"message.read\".tenants.acme".to_string()
        )
    );
    assert_eq!(d("message.read", Some("globex")).0, Stage::Off);
    assert_eq!(
        d("message.read", Some("initech")),
        (Stage::Shadow, "file paths.\"message.read\"".to_string())
    );
    assert_eq!(d("message.read", None).0, Stage::Shadow);
    assert_eq!(d("message.write", Some("acme")).0, Stage::DualWrite);
    let (s, origin) = d("message.write", Some("initech"));
    assert_eq!(s, Stage::Off);
    assert!(origin.starts_with("default"), "{origin}");
    let (s, origin) = d("conversation.list", None);
    assert_eq!(s, Stage::Off);
    assert_eq!(origin, "default (no entry in the flag file)");
    assert!(matches!(
        flags.decide("message.delete", &FlagContext::default()),
        Err(FlagError::UnknownPath(p)) if p == "message.delete"
    ));
    // The path's check_ratio (1.0) wins over the file default (0.0).
    let mut dec = flags
        .decide("message.read", &FlagContext::default())
        .unwrap();
    assert_eq!(dec.consistent(|| true), Some(true));
    let mut dec = flags
        .decide("conversation.list", &FlagContext::default())
        .unwrap();
    assert_eq!(dec.consistent(|| panic!("ratio 0 never checks")), None);

    let listed = flags.list(&FlagContext::tenant("acme"));
    assert_eq!(listed.len(), 3);
    let read = listed.iter().find(|p| p.path == "message.read").unwrap();
    assert_eq!(read.stage, Stage::Live);
    assert_eq!(read.flag, "message-read");
    assert_eq!(read.tenants.get("globex"), Some(&Stage::Off));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_missing_or_invalid_file_fails_at_startup() {
    let dir = temp_dir("startup");
    let file = dir.join("flags.toml");
    let err = Flags::file(&file, ["a.b".to_string()], Duration::from_secs(1)).unwrap_err();
    assert!(matches!(err, FlagError::Io { .. }), "{err}");
    std::fs::write(&file, "[paths.\"a.c\"]\nstage = \"live\"\n").unwrap();
    let err = Flags::file(&file, ["a.b".to_string()], Duration::from_secs(1)).unwrap_err();
    assert!(err.to_string().contains("paths.\"a.c\""), "{err}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn consistency_checks_are_sampled_at_the_ratio() {
    let path: Arc<str> = Arc::from("message.read");
    let ran = |ratio: f64, n: usize| {
        (0..n)
            .filter(|_| {
                let mut d = Decision::sampled(path.clone(), Stage::Shadow, "t".into(), ratio);
                d.consistent(|| true).is_some()
            })
            .count()
    };
    assert_eq!(ran(0.0, 1000), 0);
    assert_eq!(ran(1.0, 1000), 1000);
    let n = ran(0.25, 20_000);
    // Binomial(20000, 0.25): sd ≈ 61; ±500 is > 8 sd.
    assert!((4500..=5500).contains(&n), "{n}");
    let mut d = Decision::sampled(path.clone(), Stage::Shadow, "t".into(), 1.0);
    assert_eq!(d.consistent(|| false), Some(false));
}

#[test]
fn incomplete_measurements_are_not_reported() {
    let path: Arc<str> = Arc::from("p");
    let mut d = Decision::sampled(path.clone(), Stage::Shadow, "t".into(), 1.0);
    assert_eq!(d.problem(), Some("operation not recorded"));
    d.operation(OpKind::Read);
    assert_eq!(d.problem(), Some("no origin invoked"));
    d.latency(Origin::Old, Duration::from_millis(3));
    assert_eq!(d.problem(), None, "latency implies invoked");
    d.consistent(|| true);
    assert!(d.problem().is_some(), "consistency needs both origins");
    d.error(Origin::New);
    assert_eq!(d.problem(), None);
    d.finish();
}

#[test]
fn set_stage_creates_edits_and_keeps_other_entries() {
    let dir = temp_dir("set");
    let file = dir.join("flags.toml");
    set_stage(&file, "message.read", Stage::Shadow, None).unwrap();
    set_stage(&file, "message.read", Stage::Live, Some("acme")).unwrap();
    set_stage(&file, "message.write", Stage::DualWrite, None).unwrap();
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, format!("# owned by chat-team\n\n{text}")).unwrap();
    set_stage(&file, "message.read", Stage::Complete, Some("globex")).unwrap();
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.starts_with("# owned by chat-team\n"), "{text}");
    let st = parse(&text, false, None).unwrap();
    assert_eq!(st.stage_of("message.read", None), Some(Stage::Shadow));
    assert_eq!(st.stage_of("message.read", Some("acme")), Some(Stage::Live));
    assert_eq!(
        st.stage_of("message.read", Some("globex")),
        Some(Stage::Complete)
    );
    assert_eq!(st.stage_of("message.write", None), Some(Stage::DualWrite));
    // No temporary files are left behind.
    let names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().all(|n| !n.ends_with(".tmp")), "{names:?}");

    // JSON by extension.
    let jf = dir.join("flags.json");
    set_stage(&jf, "message.read", Stage::RampDown, Some("acme")).unwrap();
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&jf).unwrap()).unwrap();
    assert_eq!(v["paths"]["message.read"]["tenants"]["acme"], "rampdown");

    // A file that does not parse is not clobbered.
    std::fs::write(&file, "[paths\n").unwrap();
    assert!(set_stage(&file, "message.read", Stage::Off, None).is_err());
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "[paths\n");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn concurrent_readers_never_see_a_partial_file() {
    let dir = temp_dir("atomic");
    let file = dir.join("flags.toml");
    // Large enough that a non-atomic write would be observable mid-way.
    set_stage(&file, "message.read", Stage::Off, None).unwrap();
    for t in 0..300 {
        set_stage(
            &file,
            "message.read",
            Stage::Shadow,
            Some(&format!("tenant-{t:04}")),
        )
        .unwrap();
    }
    let stop = Arc::new(AtomicBool::new(false));
    let reads = Arc::new(AtomicUsize::new(0));
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let (file, stop, reads) = (file.clone(), stop.clone(), reads.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let text = std::fs::read_to_string(&file).expect("file always exists");
                    let st = parse(&text, false, None).expect("a complete file");
                    let s = st
                        .stage_of("message.read", None)
                        .expect("base stage present");
                    assert!(matches!(s, Stage::Live | Stage::Off | Stage::Shadow));
                    assert_eq!(
                        st.stage_of("message.read", Some("tenant-0299")),
                        Some(Stage::Shadow)
                    );
                    reads.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    let writers: Vec<_> = [Stage::Live, Stage::Off]
        .into_iter()
        .map(|s| {
            let file = file.clone();
            std::thread::spawn(move || {
                for _ in 0..40 {
                    set_stage(&file, "message.read", s, None).unwrap();
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        r.join().expect("reader saw a partial file");
    }
    assert!(reads.load(Ordering::Relaxed) > 0);
    // Both writers' edits landed on the same file without clobbering the tenants.
    let st = parse(&std::fs::read_to_string(&file).unwrap(), false, None).unwrap();
    assert_eq!(
        st.stage_of("message.read", Some("tenant-0000")),
        Some(Stage::Shadow)
    );
    let _ = std::fs::remove_dir_all(dir);
}

/// One valid `[[table]]`: a config needs one, whatever else it tests.
#[test]
fn decisions_can_cross_awaits() {
    fn is_send<T: Send + 'static>() {}
    is_send::<Decision>();
    is_send::<Flags>();
}
