//! The OpenAPI 3.0 document of every JSON route, written by hand ([`document`]) and kept true by
//! `tests.rs`: its (method, path) pairs equal [`super::table`], and each GET answers with a status
//! it lists and a body its schema describes.

use axum::Json;
use serde_json::{Map, Value, json};

pub const PATH: &str = "/v1/openapi.json";

/// `GET /v1/openapi.json` (public: it describes the API and holds no data).
pub async fn serve() -> Json<Value> {
    Json(document())
}

fn string() -> Value {
    json!({"type": "string"})
}
fn nstring() -> Value {
    json!({"type": "string", "nullable": true})
}
fn time() -> Value {
    json!({"type": "string", "format": "date-time"})
}
fn ntime() -> Value {
    json!({"type": "string", "format": "date-time", "nullable": true})
}
fn int() -> Value {
    json!({"type": "integer"})
}
fn nint() -> Value {
    json!({"type": "integer", "nullable": true})
}
fn nnum() -> Value {
    json!({"type": "number", "nullable": true})
}
fn boolean() -> Value {
    json!({"type": "boolean"})
}
fn array(items: Value) -> Value {
    json!({"type": "array", "items": items})
}
fn schema(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}
fn nullable(name: &str) -> Value {
    json!({"nullable": true, "allOf": [schema(name)]})
}
fn severity() -> Value {
    json!({"type": "string", "enum": ["critical", "high", "medium", "low", "info"]})
}

/// An object whose listed properties are all required.
fn object(props: Vec<(&str, Value)>) -> Value {
    let required: Vec<&str> = props.iter().map(|(k, _)| *k).collect();
    let properties: Map<String, Value> = props.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
    json!({"type": "object", "required": required, "properties": properties})
}

/// `base` with more properties that may be absent.
fn optional(mut base: Value, props: Vec<(&str, Value)>) -> Value {
    if let Some(properties) = base["properties"].as_object_mut() {
        properties.extend(props.into_iter().map(|(k, v)| (k.to_owned(), v)));
    }
    base
}

fn named(pairs: Vec<(&str, Value)>) -> Value {
    Value::Object(pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
}

fn finding_props() -> Vec<(&'static str, Value)> {
    vec![
        ("id", int()),
        ("org", string()),
        ("environment", string()),
        ("host_id", nstring()),
        ("hostname", nstring()),
        ("source", json!({"type": "string", "enum": ["host", "fleet"]})),
        ("rule", string()),
        ("severity", severity()),
        ("subject", string()),
        ("title", string()),
        (
            "evidence",
            json!({"description": "The rule's evidence, as judged"}),
        ),
        ("first_seen", time()),
        ("detected_at", time()),
        ("last_seen", time()),
        ("resolved_at", ntime()),
        ("suppressed", boolean()),
        ("change_window", nint()),
    ]
}

fn snapshot_ref_props() -> Vec<(&'static str, Value)> {
    vec![
        ("id", string()),
        ("collected_at", time()),
        ("received_at", time()),
    ]
}

fn schemas() -> Value {
    let mut host_finding = finding_props();
    host_finding.extend([
        ("rationale", nstring()),
        ("remediation", nstring()),
        ("reference", nstring()),
        ("likelihood", nstring()),
        ("impact", nstring()),
    ]);
    let mut snapshot_view = snapshot_ref_props();
    snapshot_view.extend([
        ("agent", json!({"type": "object"})),
        ("host", json!({"type": "object"})),
        (
            "sections",
            json!({"type": "object", "additionalProperties": true}),
        ),
        ("probes", json!({"type": "object", "additionalProperties": true})),
        ("errors", array(json!({}))),
    ]);
    named(vec![
        (
            "Error",
            object(vec![
                (
                    "error",
                    json!({"type": "string", "description": "Stable code: not_found, invalid_request, malformed_json, unauthenticated, invalid_token, csrf_failed…"}),
                ),
                ("message", string()),
            ]),
        ),
        ("Health", object(vec![("status", string())])),
        (
            "EnrollRequest",
            optional(
                object(vec![
                    ("token", string()),
                    ("host_id", json!({"type": "string", "format": "uuid"})),
                    ("hostname", string()),
                    (
                        "role",
                        json!({"type": "string", "enum": ["vda", "controller", "other"]}),
                    ),
                    ("agent_version", string()),
                ]),
                vec![(
                    "csr",
                    json!({"type": "string", "description": "PKCS#10 certificate signing request (PEM) for a key made on the host; required when the collector requires client certificates"}),
                )],
            ),
        ),
        (
            "EnrollResponse",
            optional(
                object(vec![
                    ("credential", string()),
                    ("host_id", json!({"type": "string", "format": "uuid"})),
                    ("org", string()),
                    ("environment", string()),
                ]),
                vec![("client_certificate", schema("ClientCertificate"))],
            ),
        ),
        (
            "ClientCertificate",
            object(vec![
                (
                    "certificate",
                    json!({"type": "string", "description": "PEM; CN the host id, SAN URIs urn:callhome:host:<uuid>, urn:callhome:org:<org>, urn:callhome:env:<environment>"}),
                ),
                (
                    "ca",
                    json!({"type": "string", "description": "The agent CA's certificate, PEM"}),
                ),
            ]),
        ),
        (
            "CertificateRequest",
            object(vec![(
                "csr",
                json!({"type": "string", "description": "PKCS#10 certificate signing request, PEM"}),
            )]),
        ),
        (
            "SnapshotAccepted",
            object(vec![
                ("id", json!({"type": "string", "format": "uuid"})),
                (
                    "status",
                    json!({"type": "string", "enum": ["stored", "duplicate"]}),
                ),
            ]),
        ),
        (
            "Me",
            object(vec![
                ("login", string()),
                ("name", string()),
                ("role", json!({"type": "string", "enum": ["admin", "tam"]})),
                (
                    "orgs",
                    json!({"type": "array", "items": string(), "nullable": true, "description": "null for admins: every org"}),
                ),
            ]),
        ),
        (
            "DayScore",
            object(vec![
                ("day", json!({"type": "string", "format": "date"})),
                ("score", json!({"type": "number"})),
            ]),
        ),
        (
            "OrgRank",
            object(vec![
                ("org", string()),
                ("name", string()),
                (
                    "tier",
                    json!({"type": "string", "nullable": true, "enum": ["select", "priority", "priority-plus", null], "description": "null: no active contract"}),
                ),
                ("scored", boolean()),
                (
                    "score",
                    json!({"type": "number", "nullable": true, "description": "null for Select and lapsed orgs (not scored), never 0"}),
                ),
                ("score_computed_at", ntime()),
                ("change_7d", nnum()),
                ("change_30d", nnum()),
                ("open_criticals", int()),
                ("stale_hosts", int()),
                ("hosts", int()),
                ("last_seen", ntime()),
                ("tams", array(string())),
            ]),
        ),
        (
            "OrgList",
            object(vec![("orgs", array(schema("OrgRank"))), ("data_as_of", ntime())]),
        ),
        (
            "Environment",
            object(vec![
                ("name", string()),
                ("score", nnum()),
                ("score_computed_at", ntime()),
                ("hosts", int()),
                ("stale_hosts", int()),
                ("open_criticals", int()),
                (
                    "vda_versions",
                    json!({"type": "object", "additionalProperties": int(), "description": "hosts by VDA version (`unknown` when not reported)"}),
                ),
                ("trend", array(schema("DayScore"))),
            ]),
        ),
        (
            "RuleGroup",
            object(vec![
                ("rule", string()),
                ("worst_severity", severity()),
                ("hosts", int()),
                ("findings", int()),
                ("example_title", string()),
                ("rationale", nstring()),
                ("remediation", nstring()),
            ]),
        ),
        (
            "StaleHost",
            object(vec![
                ("host_id", string()),
                ("hostname", string()),
                ("environment", string()),
                ("last_seen", ntime()),
                ("rule", string()),
            ]),
        ),
        (
            "OrgDetail",
            object(vec![
                ("org", string()),
                ("name", string()),
                ("tier", nstring()),
                ("scored", boolean()),
                ("score", nnum()),
                ("score_computed_at", ntime()),
                ("hosts", int()),
                ("open_criticals", int()),
                ("last_seen", ntime()),
                ("environments", array(schema("Environment"))),
                ("findings_by_rule", array(schema("RuleGroup"))),
                ("stale_hosts", array(schema("StaleHost"))),
                ("trend", array(schema("DayScore"))),
            ]),
        ),
        (
            "HostRow",
            object(vec![
                ("host_id", string()),
                ("hostname", string()),
                ("environment", string()),
                ("role", string()),
                ("vda_version", nstring()),
                ("agent_version", string()),
                ("last_seen", ntime()),
                ("score", nnum()),
                ("open_findings", int()),
                ("open_criticals", int()),
                ("worst_severity", json!({"type": "string", "nullable": true})),
            ]),
        ),
        (
            "HostList",
            object(vec![
                ("org", string()),
                ("environment", nstring()),
                ("hosts", array(schema("HostRow"))),
            ]),
        ),
        ("Finding", object(finding_props())),
        (
            "FindingList",
            object(vec![("org", string()), ("findings", array(schema("Finding")))]),
        ),
        ("HostFinding", object(host_finding)),
        ("SnapshotRef", object(snapshot_ref_props())),
        ("SnapshotView", object(snapshot_view)),
        (
            "HostDetail",
            object(vec![
                ("host_id", string()),
                ("org", string()),
                ("environment", string()),
                ("hostname", string()),
                ("role", string()),
                ("agent_version", string()),
                ("enrolled_at", time()),
                ("last_seen", ntime()),
                ("vda_version", nstring()),
                (
                    "controllers",
                    json!({"type": "array", "items": string(), "nullable": true}),
                ),
                ("clock_skew_secs", nnum()),
                ("score", nnum()),
                ("findings", array(schema("HostFinding"))),
                ("history", array(schema("HostFinding"))),
                ("latest_snapshot", nullable("SnapshotView")),
                ("snapshots", array(schema("SnapshotRef"))),
                ("trend", array(schema("DayScore"))),
            ]),
        ),
        (
            "Change",
            object(vec![
                ("section", string()),
                ("item", string()),
                ("field", string()),
                (
                    "kind",
                    json!({"type": "string", "enum": ["added", "removed", "changed"]}),
                ),
                ("before", nstring()),
                ("after", nstring()),
            ]),
        ),
        (
            "SnapshotDiff",
            object(vec![
                ("org", string()),
                ("host_id", string()),
                ("from", schema("SnapshotRef")),
                ("to", schema("SnapshotRef")),
                ("changes", array(schema("Change"))),
            ]),
        ),
        (
            "QueueDiff",
            object(vec![
                ("queue_id", int()),
                ("finding_id", int()),
                ("org", string()),
                ("host_id", nstring()),
                ("rule", string()),
                ("subject", string()),
                ("from", nullable("SnapshotRef")),
                ("to", nullable("SnapshotRef")),
                ("changes", array(schema("Change"))),
                ("note", nstring()),
            ]),
        ),
        (
            "ScoreHistory",
            object(vec![
                ("org", string()),
                ("environment", nstring()),
                ("scored", boolean()),
                ("days", int()),
                ("history", array(schema("DayScore"))),
            ]),
        ),
        (
            "QueueEntry",
            object(vec![
                ("id", int()),
                ("finding_id", int()),
                ("org", string()),
                ("tier", string()),
                ("environment", string()),
                ("host_id", nstring()),
                ("hostname", nstring()),
                ("rule", string()),
                ("subject", string()),
                ("title", string()),
                ("detected_at", time()),
                ("response_deadline", time()),
                ("restoration_deadline", ntime()),
                ("overdue", boolean()),
                ("acknowledged_at", ntime()),
                ("acknowledged_by", nstring()),
                ("closed_at", ntime()),
                ("close_reason", nstring()),
            ]),
        ),
        (
            "QueueList",
            object(vec![
                ("entries", array(schema("QueueEntry"))),
                ("data_as_of", ntime()),
            ]),
        ),
        (
            "AuditEntry",
            object(vec![
                ("id", int()),
                ("at", time()),
                (
                    "actor",
                    json!({"type": "string", "description": "a login, or `cli:USER` for an admin command on the server"}),
                ),
                (
                    "actor_kind",
                    json!({"type": "string", "enum": ["admin", "tam", "cli", "unknown"]}),
                ),
                (
                    "action",
                    json!({"type": "string", "enum": [
                        "sign_in", "sign_in_failed", "sign_out", "user_add", "user_disable", "password_change",
                        "tam_assign", "tam_unassign", "api_token_issue", "api_token_revoke",
                        "enrollment_token_issue", "enrollment_token_revoke", "queue_ack", "suppression_add",
                        "suppression_end", "change_add", "change_cancel", "org_add", "contract_add"
                    ]}),
                ),
                ("target", string()),
                ("org", nstring()),
                (
                    "address",
                    json!({"type": "string", "description": "the client's address; `local` for a command on the server"}),
                ),
                (
                    "details",
                    json!({"type": "object", "description": "small non-secret facts about the action"}),
                ),
            ]),
        ),
        (
            "AuditList",
            object(vec![("entries", array(schema("AuditEntry")))]),
        ),
        (
            "AckResult",
            object(vec![
                (
                    "recorded",
                    json!({"type": "boolean", "description": "false: acknowledged earlier by someone else, whose name stays"}),
                ),
                ("entry", schema("QueueEntry")),
            ]),
        ),
        (
            "Suppression",
            object(vec![
                ("id", int()),
                ("org", string()),
                ("environment", nstring()),
                ("host_id", nstring()),
                ("rule", string()),
                ("reason", string()),
                ("author", string()),
                ("created_at", time()),
                ("expires_at", time()),
                ("ended_at", ntime()),
                ("ended_by", nstring()),
                ("active", boolean()),
            ]),
        ),
        (
            "SuppressionList",
            object(vec![
                ("org", string()),
                ("suppressions", array(schema("Suppression"))),
            ]),
        ),
        (
            "NewSuppression",
            json!({
                "type": "object",
                "additionalProperties": false,
                "required": ["rule", "reason", "days"],
                "properties": {
                    "rule": string(),
                    "environment": {"type": "string", "description": "only this environment"},
                    "host": {"type": "string", "format": "uuid", "description": "only this host"},
                    "reason": string(),
                    "days": {"type": "integer", "minimum": 1, "maximum": super::plans::MAX_SUPPRESSION_DAYS}
                }
            }),
        ),
        (
            "ChangeWindow",
            object(vec![
                ("id", int()),
                ("org", string()),
                ("environment", string()),
                ("starts_at", time()),
                ("ends_at", time()),
                ("description", string()),
                ("author", string()),
                ("created_at", time()),
                ("cancelled_at", ntime()),
                ("findings", int()),
            ]),
        ),
        (
            "ChangeList",
            object(vec![
                ("org", string()),
                ("changes", array(schema("ChangeWindow"))),
            ]),
        ),
        (
            "NewChange",
            json!({
                "type": "object",
                "additionalProperties": false,
                "required": ["environment", "starts_at", "ends_at", "description"],
                "properties": {
                    "environment": string(),
                    "starts_at": time(),
                    "ends_at": {"type": "string", "format": "date-time", "description": "after starts_at, at most 14 days later"},
                    "description": string()
                }
            }),
        ),
    ])
}

/// A reusable error answer.
fn error(description: &str) -> Value {
    json!({"description": description, "content": {"application/json": {"schema": schema("Error")}}})
}

fn responses() -> Value {
    json!({
        "BadRequest": error("A malformed body or a bad query value (the message names it)"),
        "Unauthorized": error("No credentials, or an unknown or revoked API token"),
        "Forbidden": error("A cookie-authenticated write without the session's CSRF token"),
        "NotFound": error("Unknown, or of an org the caller may not see (the same answer)"),
        "Unavailable": error("The database cannot answer now; retry after Retry-After"),
    })
}

fn err(name: &str) -> Value {
    json!({"$ref": format!("#/components/responses/{name}")})
}

/// A JSON answer of schema `name`.
fn ok(description: &str, name: &str) -> Value {
    json!({"description": description, "content": {"application/json": {"schema": schema(name)}}})
}

fn csv_answer(description: &str) -> Value {
    json!({
        "description": description,
        "headers": {"Content-Disposition": {"schema": {"type": "string"}, "description": "attachment; filename=…"}},
        "content": {"text/csv": {"schema": {"type": "string"}}}
    })
}

fn path_param(name: &str, description: &str, schema: Value) -> Value {
    json!({"name": name, "in": "path", "required": true, "description": description, "schema": schema})
}

fn query_param(name: &str, description: &str, schema: Value) -> Value {
    json!({"name": name, "in": "query", "required": false, "description": description, "schema": schema})
}

fn org_param() -> Value {
    path_param("org", "Org id", string())
}

fn id_param(what: &str) -> Value {
    path_param("id", what, int())
}

fn host_param() -> Value {
    path_param("host_id", "Host id", json!({"type": "string", "format": "uuid"}))
}

fn finding_filters() -> Vec<Value> {
    vec![
        query_param("severity", "Only this severity", severity()),
        query_param("rule", "Only this rule id", string()),
        query_param(
            "state",
            "open (default), resolved or all",
            json!({"type": "string", "enum": ["open", "resolved", "all"], "default": "open"}),
        ),
        query_param("environment", "Only this environment", string()),
        query_param(
            "host",
            "Only this host",
            json!({"type": "string", "format": "uuid"}),
        ),
    ]
}

/// A TAM operation: bearer or cookie auth; `extra` are its responses beyond 401 and 503.
fn tam(summary: &str, parameters: Vec<Value>, mut answers: Map<String, Value>, body: Option<&str>) -> Value {
    answers.insert("401".to_owned(), err("Unauthorized"));
    answers.insert("503".to_owned(), err("Unavailable"));
    let mut op = json!({
        "summary": summary,
        "security": [{"bearer": []}, {"session": []}],
        "parameters": parameters,
        "responses": answers,
    });
    if let Some(name) = body {
        op["requestBody"] =
            json!({"required": true, "content": {"application/json": {"schema": schema(name)}}});
    }
    op
}

fn answers(pairs: Vec<(&str, Value)>) -> Map<String, Value> {
    pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}

/// The write operations' common answers besides success.
fn write_errors(mut m: Map<String, Value>) -> Map<String, Value> {
    m.insert("400".to_owned(), err("BadRequest"));
    m.insert("403".to_owned(), err("Forbidden"));
    m.insert("404".to_owned(), err("NotFound"));
    m.insert("415".to_owned(), error("The body is not application/json"));
    m
}

pub fn document() -> Value {
    use callhome_shared::api::{CERTIFICATE_PATH, ENROLL_PATH, SNAPSHOTS_PATH};
    let nf = || err("NotFound");
    let bad = || err("BadRequest");
    let mut paths = Map::new();
    let mut add = |path: &str, method: &str, op: Value| {
        let entry = paths.entry(path.to_owned()).or_insert_with(|| json!({}));
        entry[method] = op;
    };
    add(
        "/healthz",
        "get",
        json!({
            "summary": "Liveness: 200 whenever the process serves HTTP",
            "security": [],
            "responses": {"200": ok("Alive", "Health")}
        }),
    );
    add(
        "/readyz",
        "get",
        json!({
            "summary": "Readiness: 200 when the database answers",
            "security": [],
            "responses": {"200": ok("Ready", "Health"), "503": err("Unavailable")}
        }),
    );
    add(
        PATH,
        "get",
        json!({
            "summary": "This document",
            "security": [],
            "responses": {"200": {"description": "OpenAPI 3.0 document", "content": {"application/json": {"schema": {"type": "object"}}}}}
        }),
    );
    add(
        ENROLL_PATH,
        "post",
        json!({
            "summary": "Agent enrollment: trades an enrollment token for the host's credential, and an optional CSR (`csr`, PEM) for a client certificate",
            "security": [],
            "requestBody": {"required": true, "content": {"application/json": {"schema": schema("EnrollRequest")}}},
            "responses": {
                "201": ok("Enrolled; the credential is shown once", "EnrollResponse"),
                "400": bad(),
                "401": error("Unknown, expired or revoked enrollment token"),
                "403": error("The org's contract has lapsed"),
                "409": error("The host is enrolled in another org"),
                "413": error("Body too large"),
                "503": err("Unavailable")
            }
        }),
    );
    add(
        SNAPSHOTS_PATH,
        "post",
        json!({
            "summary": "Agent snapshot upload (the agent's credential as a bearer token; body JSON, optionally gzip or zstd)",
            "security": [{"agent": []}],
            "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object", "description": "A snapshot (callhome_shared::Snapshot)"}}}},
            "responses": {
                "201": ok("Stored", "SnapshotAccepted"),
                "200": ok("Already stored (a replay)", "SnapshotAccepted"),
                "400": bad(),
                "401": error("Unknown or revoked credential; under mutual TLS, no client certificate or an expired one (client_certificate_required, client_certificate_expired)"),
                "403": error("Wrong host, or lapsed contract; under mutual TLS, a client certificate bound to another host, org or environment (client_certificate_mismatch)"),
                "413": error("Too large, before or after decompression"),
                "415": error("Unknown content encoding or type"),
                "422": error("Unsupported schema version"),
                "429": error("Too many snapshots in flight; retry after Retry-After"),
                "503": err("Unavailable")
            }
        }),
    );
    add(
        CERTIFICATE_PATH,
        "post",
        json!({
            "summary": "Client certificate renewal (mutual TLS): a CSR for a new key of the agent's host; the agent's credential as a bearer token, and its current client certificate when the collector requires one",
            "security": [{"agent": []}],
            "requestBody": {"required": true, "content": {"application/json": {"schema": schema("CertificateRequest")}}},
            "responses": {
                "200": ok("Signed, for the credential's host, org and environment", "ClientCertificate"),
                "400": bad(),
                "401": error("Unknown or revoked credential; no client certificate, or an expired one (client_certificate_required, client_certificate_expired)"),
                "403": error("Client certificate bound to another host, org or environment (client_certificate_mismatch)"),
                "404": error("This collector issues no client certificates"),
                "413": error("Body too large"),
                "429": error("Rate limit; retry after Retry-After"),
                "503": err("Unavailable")
            }
        }),
    );
    add(
        "/v1/me",
        "get",
        tam(
            "Who the credentials belong to",
            vec![],
            answers(vec![("200", ok("The caller", "Me"))]),
            None,
        ),
    );
    add(
        "/v1/orgs",
        "get",
        tam(
            "Orgs the caller may see, ranked by risk",
            vec![],
            answers(vec![("200", ok("Ranked orgs", "OrgList"))]),
            None,
        ),
    );
    add(
        "/v1/orgs/{org}",
        "get",
        tam(
            "An org: environments (scores, hosts, stale, VDA versions), findings grouped by rule, trends",
            vec![org_param()],
            answers(vec![("200", ok("The org", "OrgDetail")), ("404", nf())]),
            None,
        ),
    );
    add(
        "/v1/orgs/{org}/hosts",
        "get",
        tam(
            "The org's hosts, riskiest first",
            vec![
                org_param(),
                query_param("environment", "Only this environment", string()),
            ],
            answers(vec![
                ("200", ok("Hosts", "HostList")),
                ("400", bad()),
                ("404", nf()),
            ]),
            None,
        ),
    );
    add(
        "/v1/orgs/{org}/hosts.csv",
        "get",
        tam(
            "The org's hosts as CSV",
            vec![org_param()],
            answers(vec![("200", csv_answer("CSV download")), ("404", nf())]),
            None,
        ),
    );
    let mut params = vec![org_param()];
    params.extend(finding_filters());
    add(
        "/v1/orgs/{org}/findings",
        "get",
        tam(
            "The org's findings, worst first",
            params.clone(),
            answers(vec![
                ("200", ok("Findings", "FindingList")),
                ("400", bad()),
                ("404", nf()),
            ]),
            None,
        ),
    );
    add(
        "/v1/orgs/{org}/findings.csv",
        "get",
        tam(
            "The org's findings as CSV (same filters)",
            params,
            answers(vec![
                ("200", csv_answer("CSV download")),
                ("400", bad()),
                ("404", nf()),
            ]),
            None,
        ),
    );
    add(
        "/v1/orgs/{org}/scores",
        "get",
        tam(
            "Daily score history of the org or one environment (empty for unscored tiers)",
            vec![
                org_param(),
                query_param(
                    "days",
                    "How many days back (default 90)",
                    json!({"type": "integer", "minimum": 1, "maximum": super::orgs::MAX_DAYS, "default": 90}),
                ),
                query_param(
                    "environment",
                    "This environment's history instead of the org's",
                    string(),
                ),
            ],
            answers(vec![
                ("200", ok("History, oldest first", "ScoreHistory")),
                ("400", bad()),
                ("404", nf()),
            ]),
            None,
        ),
    );
    add(
        "/v1/orgs/{org}/suppressions",
        "get",
        tam(
            "The org's suppressions, active and ended",
            vec![org_param()],
            answers(vec![
                ("200", ok("Suppressions", "SuppressionList")),
                ("404", nf()),
            ]),
            None,
        ),
    );
    add(
        "/v1/orgs/{org}/suppressions",
        "post",
        tam(
            "Suppress a rule for the org, an environment or a host, for some days (the caller is the author)",
            vec![org_param()],
            write_errors(answers(vec![("201", ok("Created", "Suppression"))])),
            Some("NewSuppression"),
        ),
    );
    add(
        "/v1/suppressions/{id}/end",
        "post",
        tam(
            "End a suppression now",
            vec![id_param("Suppression id")],
            write_errors(answers(vec![(
                "200",
                ok("The suppression, ended", "Suppression"),
            )])),
            None,
        ),
    );
    add(
        "/v1/orgs/{org}/changes",
        "get",
        tam(
            "The org's planned changes (change windows), newest first",
            vec![org_param()],
            answers(vec![("200", ok("Change windows", "ChangeList")), ("404", nf())]),
            None,
        ),
    );
    add(
        "/v1/orgs/{org}/changes",
        "post",
        tam(
            "Record a planned change for an environment (the caller is the author)",
            vec![org_param()],
            write_errors(answers(vec![("201", ok("Created", "ChangeWindow"))])),
            Some("NewChange"),
        ),
    );
    add(
        "/v1/changes/{id}/cancel",
        "post",
        tam(
            "Cancel a planned change",
            vec![id_param("Change window id")],
            write_errors(answers(vec![(
                "200",
                ok("The change window, cancelled", "ChangeWindow"),
            )])),
            None,
        ),
    );
    add(
        "/v1/hosts/{host_id}",
        "get",
        tam(
            "A host: latest snapshot sections, open findings with remediation, finding history",
            vec![host_param()],
            answers(vec![("200", ok("The host", "HostDetail")), ("404", nf())]),
            None,
        ),
    );
    add(
        "/v1/hosts/{host_id}/diff",
        "get",
        tam(
            "What changed on the host from one snapshot to another",
            vec![
                host_param(),
                json!({"name": "from", "in": "query", "required": true, "description": "Snapshot id", "schema": {"type": "string", "format": "uuid"}}),
                json!({"name": "to", "in": "query", "required": true, "description": "Snapshot id", "schema": {"type": "string", "format": "uuid"}}),
            ],
            answers(vec![
                ("200", ok("Changes", "SnapshotDiff")),
                ("400", bad()),
                ("404", nf()),
            ]),
            None,
        ),
    );
    add(
        "/v1/queue",
        "get",
        tam(
            "The critical queue of the caller's orgs, open entries first by deadline",
            vec![query_param(
                "all",
                "Closed entries too",
                json!({"type": "boolean", "default": false}),
            )],
            answers(vec![("200", ok("Entries", "QueueList")), ("400", bad())]),
            None,
        ),
    );
    add(
        "/v1/queue/{id}/ack",
        "post",
        tam(
            "Acknowledge a queue entry (records the caller and the time; the first acknowledgement stays)",
            vec![id_param("Queue entry id")],
            write_errors(answers(vec![("200", ok("Acknowledged", "AckResult"))])),
            None,
        ),
    );
    add(
        "/v1/queue/{id}/diff",
        "get",
        tam(
            "What changed between the host's last snapshot without the entry's finding and its first with it",
            vec![id_param("Queue entry id")],
            answers(vec![("200", ok("Changes", "QueueDiff")), ("404", nf())]),
            None,
        ),
    );
    add(
        "/v1/audit",
        "get",
        tam(
            "The audit log, newest first: every entry for an admin, the entries of the caller's orgs for a TAM",
            vec![
                query_param("org", "Only entries about this org", string()),
                query_param("actor", "Only entries by this actor", string()),
                query_param("since", "Only entries at or after this time (RFC 3339)", time()),
                query_param(
                    "limit",
                    "At most this many entries",
                    json!({"type": "integer", "minimum": 1, "maximum": crate::store::audit::MAX_LIMIT, "default": 100}),
                ),
            ],
            answers(vec![("200", ok("Entries", "AuditList")), ("400", bad())]),
            None,
        ),
    );
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "callhome collector API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Agent ingest and the TAM API. TAM routes take an API token (`Authorization: Bearer chtt_…`, from `callhome-collector api-token issue`) or the console's session cookie; cookie-authenticated writes also need the session's CSRF token in `X-CSRF-Token`. Orgs the caller may not see, and their ids, answer 404 exactly like unknown ones. Every answer is `Cache-Control: no-store`."
        },
        "paths": paths,
        "components": {
            "schemas": schemas(),
            "responses": responses(),
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "A TAM API token (chtt_…)"},
                "session": {"type": "apiKey", "in": "cookie", "name": "callhome_session"},
                "agent": {"type": "http", "scheme": "bearer", "description": "The agent's credential from enrollment"}
            }
        }
    })
}
