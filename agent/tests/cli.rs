//! The real `callhome-agent` binary, each test in its own temporary directory, with no collector.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use tempfile::TempDir;

const EX_CONFIG: i32 = 78;

/// A temporary directory with `agent.toml` whose `state_dir` is `DIR/state`, plus `extra`.
struct Agent {
    dir: TempDir,
}

impl Agent {
    fn new(extra: &str) -> Agent {
        let dir = tempfile::Builder::new()
            .prefix("callhome-agent-cli-")
            .tempdir()
            .unwrap();
        let state = dir.path().join("state");
        let text = format!("state_dir = {:?}\n{extra}", state.display().to_string());
        std::fs::write(dir.path().join("agent.toml"), text).unwrap();
        Agent { dir }
    }

    fn config(&self) -> PathBuf {
        self.dir.path().join("agent.toml")
    }

    fn write_config(&self, text: &str) {
        std::fs::write(self.config(), text).unwrap();
    }

    fn run(&self, args: &[&str]) -> Run {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_callhome-agent"));
        cmd.arg("--config")
            .arg(self.config())
            .args(args)
            .current_dir(self.dir.path())
            .env_remove("CALLHOME_LOG")
            .stdin(Stdio::null());
        let output = cmd.output().unwrap();
        Run {
            desc: format!("{cmd:?} in {}", self.dir.path().display()),
            output,
        }
    }
}

/// A finished run that describes itself fully when an assertion about it fails.
struct Run {
    desc: String,
    output: Output,
}

impl Run {
    fn code(&self) -> Option<i32> {
        self.output.status.code()
    }
    fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.output.stdout).into_owned()
    }
    fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.output.stderr).into_owned()
    }
    fn describe(&self) -> String {
        format!(
            "command: {}\nstatus: {}\n--- stdout\n{}\n--- stderr\n{}",
            self.desc,
            self.output.status,
            self.stdout(),
            self.stderr()
        )
    }
    fn assert_code(&self, code: i32) -> &Run {
        assert_eq!(self.code(), Some(code), "{}", self.describe());
        self
    }
    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout())
            .unwrap_or_else(|e| panic!("stdout is not JSON: {e}\n{}", self.describe()))
    }
}

#[test]
fn collect_prints_the_snapshot_with_a_stable_host_id() {
    let agent = Agent::new("");
    let first = agent.run(&["collect"]);
    first.assert_code(0);
    let a = first.json();
    for key in [
        "id",
        "schema_version",
        "agent",
        "host",
        "collected_at",
        "sections",
        "probes",
    ] {
        assert!(a.get(key).is_some(), "no `{key}`\n{}", first.describe());
    }
    assert_eq!(a["schema_version"], 1);
    assert!(a["sections"]["system"].is_object(), "{}", first.describe());
    assert!(a["sections"]["disks"].is_object(), "{}", first.describe());
    assert_eq!(a["probes"]["system"]["outcome"], "ok");

    let second = agent.run(&["collect"]);
    second.assert_code(0);
    let b = second.json();
    assert_eq!(a["host"]["host_id"], b["host"]["host_id"]);
    assert_ne!(a["id"], b["id"], "every snapshot has its own id");
    let saved = std::fs::read_to_string(agent.dir.path().join("state/host_id")).unwrap();
    assert_eq!(a["host"]["host_id"], saved.trim());

    // What `collect` prints is a snapshot the collector accepts.
    callhome_shared::decode_snapshot(&second.output.stdout).unwrap();
}

#[test]
fn collect_with_an_unwritable_state_dir_warns_and_still_prints() {
    let agent = Agent::new("");
    let blocker = agent.dir.path().join("not-a-dir");
    std::fs::write(&blocker, "").unwrap();
    agent.write_config(&format!(
        "state_dir = {:?}\n",
        blocker.join("state").display().to_string()
    ));
    let run = agent.run(&["collect"]);
    run.assert_code(0);
    assert!(run.json()["host"]["host_id"].is_string());
    assert!(run.stderr().contains("ephemeral"), "{}", run.describe());
}

#[test]
fn disabled_probe_does_not_run() {
    let agent = Agent::new("[probes.disks]\nenabled = false\n");
    let run = agent.run(&["collect"]);
    run.assert_code(0);
    let s = run.json();
    assert!(s["sections"].get("disks").is_none(), "{}", run.describe());
    assert!(s["probes"].get("disks").is_none(), "{}", run.describe());
    assert!(s["sections"]["system"].is_object(), "{}", run.describe());
}

#[test]
fn unknown_key_exits_78_naming_the_key_and_the_line() {
    let agent = Agent::new("role = \"vda\"\n\n[collector]\ntimeout_seconds = 5\n");
    for command in ["collect", "validate", "send"] {
        let run = agent.run(&[command]);
        run.assert_code(EX_CONFIG);
        let stderr = run.stderr();
        assert!(stderr.contains("timeout_seconds"), "{}", run.describe());
        assert!(stderr.contains("line 5"), "{}", run.describe());
        assert!(
            stderr.contains(&agent.config().display().to_string()),
            "{}",
            run.describe()
        );
        assert!(run.stdout().is_empty(), "{}", run.describe());
    }
}

#[test]
fn send_when_not_enrolled_exits_78_saying_to_enroll() {
    let agent = Agent::new("");
    let run = agent.run(&["send"]);
    run.assert_code(EX_CONFIG);
    assert!(
        run.stderr().contains("not enrolled") && run.stderr().contains("callhome-agent enroll"),
        "{}",
        run.describe()
    );
    assert!(run.stdout().is_empty(), "{}", run.describe());
}

#[test]
fn validate_accepts_a_good_config() {
    let agent = Agent::new(
        "role = \"controller\"\n[collector]\nurl = \"https://collector.example.com\"\n\
         timeout_secs = 10\n[probes.system]\ntimeout_secs = 2\n",
    );
    let run = agent.run(&["validate"]);
    run.assert_code(0);
    assert!(run.stdout().contains("ok"), "{}", run.describe());
}

#[test]
fn validate_reports_every_problem() {
    let agent =
        Agent::new("[collector]\nurl = \"http://collector.example.com\"\n[probes.gpu]\nenabled = true\n");
    let run = agent.run(&["validate"]);
    run.assert_code(EX_CONFIG);
    let stderr = run.stderr();
    let problems: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(problems.len(), 2, "{}", run.describe());
    assert!(problems[0].contains("line 3") && problems[0].contains("https://"));
    assert!(problems[1].contains("line 4") && problems[1].contains("unknown probe `gpu`"));
}

#[test]
fn explicit_config_that_does_not_exist_is_an_error() {
    let agent = Agent::new("");
    let missing: &Path = &agent.dir.path().join("missing.toml");
    let run = Command::new(env!("CARGO_BIN_EXE_callhome-agent"))
        .arg("--config")
        .arg(missing)
        .arg("collect")
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(EX_CONFIG), "{run:?}");
    assert!(String::from_utf8_lossy(&run.stderr).contains("missing.toml"));
}

#[test]
fn enroll_refuses_plain_http() {
    let agent = Agent::new("");
    let run = agent.run(&["enroll", "--collector", "http://127.0.0.1:1", "--token", "chet_x"]);
    run.assert_code(EX_CONFIG);
    assert!(run.stderr().contains("https://"), "{}", run.describe());
    assert!(
        !run.stderr().contains("chet_x"),
        "the token must not be printed\n{}",
        run.describe()
    );
}

#[test]
fn enroll_without_a_collector_url_says_how_to_give_one() {
    let agent = Agent::new("");
    let run = agent.run(&["enroll", "--token", "chet_x"]);
    run.assert_code(EX_CONFIG);
    assert!(run.stderr().contains("--collector"), "{}", run.describe());
}
