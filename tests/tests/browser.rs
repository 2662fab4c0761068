//! The TAM console in a real browser: headless Debian Chromium driven over WebDriver against the real
//! collector binary over HTTPS, with seeded data (a Priority Plus org with a host whose VDA service
//! is down, a TAM assigned to it, an admin). Each step is one method of [`Console`] that checks the
//! page against [`Seeded`] and saves a screenshot under `target/browser-screenshots/`: sign-in, the
//! queue, what changed for its entry, customers, the customer, the host, the report, sign-out.
//!
//! Needs `/usr/bin/chromium` and `/usr/bin/chromedriver` (`.ci/run` installs them); without them
//! the test fails and says how to install them.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use callhome_e2e::webdriver::{self, Browser};
use callhome_e2e::{Agent, Collector, rpm_host, send_tree};

const TAM_LOGIN: &str = "tam1";
const TAM_NAME: &str = "Tam One";
const TAM_PASSWORD: &str = "tam one's long password";
const ADMIN_LOGIN: &str = "root";
const ADMIN_NAME: &str = "Ada Admin";
const ORG: &str = "ACME";
/// An org the TAM is not assigned to: never on the TAM's pages.
const OTHER_ORG: &str = "OTHER";
const CRITICAL_RULE: &str = "SVC-VDA-001";

/// Long enough for a debug-build collector to hash a password and answer on a busy CI machine.
const PAGE_WAIT: Duration = Duration::from_secs(15);

/// What the collector was given, for the pages to be checked against.
struct Seeded {
    collector: Collector,
    _agent: Agent,
    _trees: tempfile::TempDir,
    admin_password: String,
    host_id: String,
    hostname: String,
    /// The open queue entry of the critical finding, as `queue list --json` prints it.
    queue_entry: serde_json::Value,
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// Orgs ACME (Priority Plus, environment `prod`, one enrolled host whose `ctxvda` is down) and
/// OTHER; admin `root`; TAM `tam1` assigned to ACME only.
fn seed() -> Seeded {
    let collector = Collector::new(None);
    collector.seed_org(ORG, "2026-01-01", "2027-12-31");
    collector.env_add(ORG, "prod");
    collector.seed_org(OTHER_ORG, "2026-01-01", "2027-12-31");
    collector.env_add(OTHER_ORG, "prod");
    let admin_password = collector
        .admin(&[
            "user",
            "add",
            ADMIN_LOGIN,
            "--role",
            "admin",
            "--name",
            ADMIN_NAME,
            "--generate-password",
        ])
        .trim()
        .to_owned();
    collector.admin_with_stdin(
        &["user", "add", TAM_LOGIN, "--role", "tam", "--name", TAM_NAME],
        &format!("{TAM_PASSWORD}\n"),
    );
    collector.admin(&["tam", "assign", TAM_LOGIN, ORG]);
    let token = collector.issue_token(ORG, "prod");
    let collector = collector.start();

    let agent = Agent::new();
    agent.enroll(&collector, &token);
    let trees = tempfile::tempdir().unwrap();
    // Captured a minute ago, so that the queue's deadlines are still ahead.
    let captured_at = (time::OffsetDateTime::now_utc() - time::Duration::minutes(1))
        .replace_nanosecond(0)
        .unwrap()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let root = rpm_host(trees.path(), "vda-down", &captured_at, true);
    let snapshot = send_tree(&agent, &collector, &root);
    // The org and environment scores follow within seconds; run the judgements now so the pages
    // show them whatever the timing.
    collector.admin(&["jobs", "run"]);

    let hosts = collector.hosts();
    assert_eq!(hosts.len(), 1, "{hosts:?}");
    let host_id = hosts[0]["host_id"]
        .as_str()
        .unwrap_or_else(|| panic!("host_id in {:?}", hosts[0]))
        .to_owned();
    // The console names a host as it enrolled (the agent's machine), which the fixture's snapshot
    // does not change.
    let hostname = hosts[0]["hostname"]
        .as_str()
        .unwrap_or_else(|| panic!("hostname in {:?}", hosts[0]))
        .to_owned();
    assert!(snapshot["host"]["hostname"].is_string(), "{snapshot:#}");
    let queue = json(&collector.admin(&["queue", "list", "--org", ORG, "--json"]));
    let entries = queue.as_array().unwrap();
    assert_eq!(entries.len(), 1, "one open critical: {queue:#}");
    assert_eq!(entries[0]["rule"], CRITICAL_RULE);
    Seeded {
        queue_entry: entries[0].clone(),
        collector,
        _agent: agent,
        _trees: trees,
        admin_password,
        host_id,
        hostname,
    }
}

/// `target/browser-screenshots/`, next to cargo's test scratch folder.
fn screenshot_dir() -> PathBuf {
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    tmp.parent().unwrap_or(tmp).join("browser-screenshots")
}

/// A WebDriver result, or a panic that names the step and shows the error in full.
trait Step<T> {
    fn step(self, what: &str) -> T;
}

impl<T> Step<T> for webdriver::Result<T> {
    fn step(self, what: &str) -> T {
        self.unwrap_or_else(|e| panic!("{what}: {e}"))
    }
}

/// The console as a user sees it: one browser session, one method per page or action.
struct Console<'a> {
    browser: &'a Browser,
    base: String,
    shots: PathBuf,
    taken: Vec<PathBuf>,
    /// What the test was doing, for the failure screenshot.
    doing: String,
}

impl Console<'_> {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn begin(&mut self, what: &str) {
        what.clone_into(&mut self.doing);
    }

    fn screenshot(&mut self, name: &str) {
        let path = self.shots.join(format!("{:02}-{name}.png", self.taken.len() + 1));
        self.browser
            .screenshot(&path)
            .step(&format!("screenshot {}", path.display()));
        self.taken.push(path);
    }

    /// The text of the page's `<main>`, as rendered.
    fn main_text(&self) -> String {
        self.browser
            .find("main")
            .step("<main>")
            .text()
            .step("text of <main>")
    }

    fn path(&self) -> String {
        self.browser.current_path().step("current path")
    }

    /// An anonymous browser at `/` is sent to the sign-in form.
    fn anonymous_home_goes_to_signin(&mut self) {
        self.begin("anonymous /");
        self.browser.goto(&self.url("/")).step("open /");
        assert_eq!(self.path(), "/signin", "an anonymous / goes to the sign-in form");
        assert_eq!(self.browser.title().step("title"), "Sign in · callhome");
        for field in [
            "#login",
            "#password",
            "form[action='/signin'] button[type=submit]",
        ] {
            self.browser
                .find(field)
                .step(&format!("sign-in form field {field}"));
        }
        self.screenshot("signin-form");
    }

    /// Types a login and password into the real form and submits it with its button.
    fn submit_signin(&mut self, login: &str, password: &str) {
        if self.path() != "/signin" {
            self.browser.goto(&self.url("/signin")).step("open /signin");
        }
        let login_field = self.browser.find("#login").step("login field");
        login_field.clear().step("clear login");
        login_field.send_keys(login).step("type login");
        self.browser
            .find("#password")
            .step("password field")
            .send_keys(password)
            .step("type password");
        self.browser
            .find("form[action='/signin'] button[type=submit]")
            .step("sign-in button")
            .click()
            .step("click Sign in");
    }

    /// A wrong password: the form again, with the refusal, and no session.
    fn sign_in_refused(&mut self, login: &str, password: &str) {
        self.begin("refused sign-in");
        self.submit_signin(login, password);
        let alert = self
            .browser
            .wait_for("p.error[role=alert]", PAGE_WAIT)
            .step("the refusal message");
        let text = alert.text().step("refusal text");
        assert!(text.starts_with("Sign-in failed"), "{text}");
        assert_eq!(self.path(), "/signin");
        self.screenshot("signin-refused");
    }

    /// Signs in and lands on `/`.
    fn sign_in(&mut self, login: &str, password: &str) {
        self.begin(&format!("sign in as {login}"));
        self.submit_signin(login, password);
        self.browser
            .wait_for_path("/", PAGE_WAIT)
            .step("landing on / after sign-in");
        self.browser
            .wait_for("form.signout", PAGE_WAIT)
            .step("the signed-in page");
    }

    /// The page a signed-in user lands on (`/`): the header says who is signed in (name, login,
    /// role) and offers sign-out; `<main>` shows one of `shows`; `hidden` orgs appear nowhere. Only
    /// the header and `<main>`'s text are relied on, so this holds whether `/` is the placeholder
    /// home page (its list of the orgs one sees: `ACME`, or `all (admin)`) or the dashboard's queue
    /// (the seeded critical's org, `ACME`, for the TAM and the admin alike).
    fn check_signed_in(&mut self, name: &str, login: &str, role: &str, shows: &[&str], hidden: &[&str]) {
        self.begin(&format!("signed-in page of {login}"));
        assert_eq!(self.path(), "/");
        let who = self
            .browser
            .find("header .who")
            .step("who is signed in")
            .text()
            .step("who");
        let who = who.split_whitespace().collect::<Vec<_>>().join(" ");
        assert_eq!(who, format!("{name} ({login}, {role})"));
        self.browser
            .find("header form.signout button[type=submit]")
            .step("the sign-out button");
        let main = self.main_text();
        assert!(
            shows.iter().any(|s| main.contains(s)),
            "one of {shows:?} on the page: {main}"
        );
        if !hidden.is_empty() {
            let source = self.browser.source().step("page source");
            for org in hidden {
                assert!(!source.contains(org), "{org} must not appear: {source}");
            }
        }
        self.screenshot(&format!("signed-in-{login}"));
    }

    /// Signs out with the header's button: back to the form, and `/` asks to sign in again.
    fn sign_out(&mut self) {
        self.begin("sign out");
        self.browser
            .find("form.signout button[type=submit]")
            .step("sign-out button")
            .click()
            .step("click Sign out");
        self.browser
            .wait_for_path("/signin", PAGE_WAIT)
            .step("back on the sign-in form");
        self.browser
            .find("#login")
            .step("the sign-in form after sign-out");
        self.screenshot("signed-out");
        self.browser.goto(&self.url("/")).step("open / after sign-out");
        assert_eq!(self.path(), "/signin", "the session ended with sign-out");
    }

    /// Follows a link and waits for the page it leads to.
    fn follow(&mut self, css: &str, path: &str) {
        self.browser
            .find(css)
            .step(&format!("the link {css}"))
            .click()
            .step(&format!("click {css}"));
        self.browser
            .wait_for_path(path, PAGE_WAIT)
            .step(&format!("landing on {path}"));
        self.browser
            .wait_for("footer .as-of", PAGE_WAIT)
            .step("the page's \"data as of\" line");
    }

    /// The "data as of" line of a page with data: a time, not "no data received yet".
    fn check_data_as_of(&self) {
        let as_of = self
            .browser
            .find("footer .as-of time")
            .step("the data-as-of time")
            .text()
            .step("data as of");
        assert!(as_of.ends_with("UTC"), "{as_of}");
    }

    /// The queue through the header's navigation: one row, the seeded critical, with a countdown.
    fn open_queue(&mut self, seeded: &Seeded) {
        self.begin("the queue");
        self.follow("nav.sections a[href='/queue']", "/queue");
        let id = seeded.queue_entry["id"].as_i64().expect("queue entry id");
        let row = self
            .browser
            .find(&format!("tr#q{id}"))
            .step("the seeded entry's row")
            .text()
            .step("row text");
        assert!(row.contains(ORG), "{row}");
        assert!(row.contains(CRITICAL_RULE), "{row}");
        assert!(row.contains(&seeded.hostname), "{row}");
        let countdown = self
            .browser
            .find(&format!("tr#q{id} .countdown"))
            .step("the countdown")
            .text()
            .step("countdown text");
        assert!(countdown.starts_with("in "), "the deadline is ahead: {countdown}");
        assert_eq!(
            self.browser.find_all("table.queue tbody tr").step("rows").len(),
            1
        );
        self.check_data_as_of();
        self.screenshot("queue");
    }

    /// What changed before the critical: the agent's first snapshot showed it, and the page says so.
    fn open_queue_changes(&mut self, seeded: &Seeded) {
        self.begin("what changed for the queue entry");
        let id = seeded.queue_entry["id"].as_i64().expect("queue entry id");
        self.follow(
            &format!("tr#q{id} a.changes-link"),
            &format!("/queue/{id}/changes"),
        );
        let main = self.main_text();
        assert!(main.contains(CRITICAL_RULE), "{main}");
        assert!(main.contains(&seeded.hostname), "{main}");
        assert!(main.contains("no earlier snapshot of this host"), "{main}");
        self.screenshot("queue-changes");
    }

    /// Customers through the navigation: ACME only, Priority Plus, scored, one critical.
    fn open_customers(&mut self) {
        self.begin("customers");
        self.follow("nav.sections a[href='/customers']", "/customers");
        let rows = self.browser.find_all("table.customers tbody tr").step("rows");
        assert_eq!(rows.len(), 1, "the TAM sees ACME only");
        let row = rows[0].text().step("ACME's row");
        assert!(row.contains(ORG) && row.contains("Priority Plus"), "{row}");
        assert!(row.contains(TAM_NAME), "the TAM is named: {row}");
        self.browser
            .find("table.customers svg.chart.spark")
            .step("the 30-day sparkline");
        let source = self.browser.source().step("page source");
        assert!(!source.contains(OTHER_ORG), "{OTHER_ORG} must not appear");
        self.check_data_as_of();
        self.screenshot("customers");
    }

    /// The customer's page from its row: the critical grouped by rule, with a link to the host.
    fn open_customer(&mut self, seeded: &Seeded) {
        self.begin("the customer's page");
        self.follow(&format!("a.org[href='/orgs/{ORG}']"), &format!("/orgs/{ORG}"));
        let main = self.main_text();
        assert!(main.contains(ORG) && main.contains("Priority Plus"), "{main}");
        let group = self
            .browser
            .find(&format!("tr#rule-{CRITICAL_RULE}"))
            .step("the critical's rule group")
            .text()
            .step("rule group text");
        assert!(
            group.contains("Critical") && group.contains(&seeded.hostname),
            "{group}"
        );
        self.browser
            .find("svg.chart.trend")
            .step("the 90-day trend chart");
        for link in ["report", "findings.csv", "hosts.csv"] {
            self.browser
                .find(&format!("a[href='/orgs/{ORG}/{link}']"))
                .step(&format!("the link to {link}"));
        }
        self.check_data_as_of();
        self.screenshot("customer");
    }

    /// The host from the rule group: its name, the critical with its evidence and remediation, and
    /// the latest snapshot's sections.
    fn open_host(&mut self, seeded: &Seeded) {
        self.begin("the host's page");
        self.follow(
            &format!("tr#rule-{CRITICAL_RULE} a[href='/hosts/{}']", seeded.host_id),
            &format!("/hosts/{}", seeded.host_id),
        );
        let title = self.browser.find("main h1").step("h1").text().step("h1 text");
        assert_eq!(title, seeded.hostname);
        let finding = self
            .browser
            .find("article.finding")
            .step("the open finding")
            .text()
            .step("finding text");
        let info = callhome_shared::rules::rule_info(CRITICAL_RULE).expect("the rule is in the catalog");
        assert!(finding.contains(CRITICAL_RULE), "{finding}");
        let words = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
        let remediation: String = words(info.remediation).chars().take(60).collect();
        assert!(
            words(&finding).contains(&remediation),
            "remediation `{remediation}` in {finding}"
        );
        self.browser
            .find("article.finding dl.evidence dt")
            .step("the finding's evidence");
        let sections = self.browser.find_all("details.section summary").step("sections");
        assert!(sections.len() >= 3, "the snapshot's sections are listed");
        self.check_data_as_of();
        self.screenshot("host");
    }

    /// The health-check report from the customer's page: the summary, the inventory with the host.
    fn open_report(&mut self, seeded: &Seeded) {
        self.begin("the report");
        self.browser
            .goto(&self.url(&format!("/orgs/{ORG}")))
            .step("open the customer's page");
        self.follow(
            &format!("a[href='/orgs/{ORG}/report']"),
            &format!("/orgs/{ORG}/report"),
        );
        let main = self.main_text();
        for heading in [
            "Executive summary",
            "Top risks and remediation",
            "Host inventory",
            "What changed since the previous report",
        ] {
            assert!(main.contains(heading), "{heading}: {main}");
        }
        let inventory = self
            .browser
            .find("table.inventory")
            .step("the host inventory")
            .text()
            .step("inventory text");
        assert!(inventory.contains(&seeded.hostname), "{inventory}");
        self.screenshot("report");
    }
}

impl Drop for Console<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let path = self.shots.join("failed.png");
            match self.browser.screenshot(&path) {
                Ok(()) => eprintln!("failed while: {}; screenshot {}", self.doing, path.display()),
                Err(e) => eprintln!("failed while: {}; no screenshot: {e}", self.doing),
            }
            if let Ok(url) = self.browser.current_url() {
                eprintln!("at {url}");
            }
        }
    }
}

#[test]
fn a_tam_signs_in_through_the_real_form_in_headless_chromium() {
    // The browser first: a machine without Chromium fails at once, saying how to install it.
    let started = Instant::now();
    let mut browser = Browser::start().unwrap_or_else(|e| panic!("{e}"));
    eprintln!("chromedriver and Chromium ready in {:?}", started.elapsed());
    let seeded = seed();
    let started = Instant::now();
    let shots = screenshot_dir();
    std::fs::create_dir_all(&shots).unwrap();
    for old in std::fs::read_dir(&shots).unwrap() {
        let old = old.unwrap().path();
        if old.extension().is_some_and(|e| e == "png") {
            std::fs::remove_file(old).unwrap();
        }
    }
    let mut console = Console {
        browser: &browser,
        base: seeded.collector.url(),
        shots,
        taken: Vec::new(),
        doing: String::new(),
    };

    console.anonymous_home_goes_to_signin();
    console.sign_in_refused(TAM_LOGIN, "not the password at all");
    console.sign_in(TAM_LOGIN, TAM_PASSWORD);
    console.check_signed_in(TAM_NAME, TAM_LOGIN, "tam", &[ORG], &[OTHER_ORG]);
    console.open_queue(&seeded);
    console.open_queue_changes(&seeded);
    console.open_customers();
    console.open_customer(&seeded);
    console.open_host(&seeded);
    console.open_report(&seeded);
    console.sign_out();

    console.sign_in(ADMIN_LOGIN, &seeded.admin_password);
    console.check_signed_in(ADMIN_NAME, ADMIN_LOGIN, "admin", &["all (admin)", ORG], &[]);
    console.sign_out();

    let taken = std::mem::take(&mut console.taken);
    drop(console);
    browser.quit().unwrap_or_else(|e| panic!("end the session: {e}"));
    eprintln!(
        "browser steps took {:?}; seeded host {} ({}), queue entry {} ({}); screenshots:",
        started.elapsed(),
        seeded.hostname,
        seeded.host_id,
        seeded.queue_entry["id"],
        seeded.queue_entry["rule"],
    );
    for path in &taken {
        eprintln!("  {}", path.display());
    }
    assert_eq!(taken.len(), 12, "{taken:?}");
    assert!(
        !seeded.collector.log_text().contains(TAM_PASSWORD),
        "a password reached the collector's log"
    );
}
