//! BackupSchedule (`mcpbs`): cron-scheduled, encrypted snapshots with retention.
//!
//! The schema checks shapes (five cron fields, duration strings, names); [`BackupScheduleSpec::validate`]
//! checks what OpenAPI cannot: cron field ranges, a safe destination path, and that Secrets are
//! never written in plaintext unless the spec says so.

use std::collections::BTreeSet;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector, Time};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::instance::SecretKeyRef;
use super::maintenance::parse_duration;

/// Snapshots kept when `retention.keepLast` is unset.
pub const DEFAULT_KEEP_LAST: i32 = 7;
/// Most entries kept in `status.snapshots` (newest first).
pub const MAX_STATUS_SNAPSHOTS: usize = 50;

/// Desired backup schedule.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "jsmcp.io",
    version = "v1alpha1",
    kind = "BackupSchedule",
    plural = "backupschedules",
    shortname = "mcpbs",
    category = "jsmcp",
    namespaced,
    status = "BackupScheduleStatus",
    printcolumn = r#"{"name":"Schedule","type":"string","jsonPath":".spec.schedule"}"#,
    printcolumn = r#"{"name":"Suspended","type":"boolean","jsonPath":".spec.suspend"}"#,
    printcolumn = r#"{"name":"Last Backup","type":"date","jsonPath":".status.lastSuccessfulSnapshot.time"}"#,
    printcolumn = r#"{"name":"Next","type":"string","jsonPath":".status.nextScheduleTime"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct BackupScheduleSpec {
    /// Cron expression with five fields: minute hour day-of-month month day-of-week,
    /// e.g. `0 3 * * *` (03:00 every day). Names (`MON`, `JAN`), ranges, lists and steps work.
    #[schemars(
        length(min = 9, max = 128),
        pattern(r"^([0-9A-Za-z*?,/-]+ +){4}[0-9A-Za-z*?,/-]+$")
    )]
    pub schedule: String,
    /// IANA time zone the schedule is read in, e.g. `Europe/Berlin` (default `UTC`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(max = 64),
        pattern(r"^[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+)*$")
    )]
    pub time_zone: Option<String>,
    /// When true no new snapshot starts; status is still reported.
    #[serde(default)]
    pub suspend: bool,
    /// Take a snapshot as soon as the schedule is created (default false: wait for the schedule).
    #[serde(default)]
    pub run_on_create: bool,
    /// What to take.
    #[serde(default)]
    pub what: BackupTarget,
    /// Where snapshots are written.
    #[serde(default)]
    pub destination: BackupDestination,
    /// Encryption of Secret data.
    #[serde(default)]
    pub encryption: EncryptionSpec,
    /// Which snapshots to keep.
    #[serde(default)]
    pub retention: RetentionSpec,
}

/// The objects a snapshot contains.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackupTarget {
    /// Namespaces to read. Empty: the BackupSchedule's own namespace.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(
        length(max = 64),
        inner(length(min = 1, max = 63), pattern(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"))
    )]
    pub namespaces: Vec<String>,
    /// Kinds to take. Empty: every kind listed here.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub kinds: Vec<BackupKind>,
    /// Only objects with these labels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label_selector: Option<LabelSelector>,
    /// Only objects with these names. Empty: any name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(
        length(max = 256),
        inner(
            length(min = 1, max = 253),
            pattern(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
        )
    )]
    pub names: Vec<String>,
}

/// A kind of object a snapshot can hold.
#[derive(
    Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, JsonSchema,
)]
pub enum BackupKind {
    /// core/v1 ConfigMap.
    ConfigMap,
    /// core/v1 Secret (data encrypted unless plaintext is explicitly allowed).
    Secret,
    /// apps/v1 Deployment.
    Deployment,
    /// core/v1 Service.
    Service,
    /// core/v1 ServiceAccount.
    ServiceAccount,
    /// rbac.authorization.k8s.io/v1 Role.
    Role,
    /// rbac.authorization.k8s.io/v1 RoleBinding.
    RoleBinding,
    /// jsmcp.io/v1alpha1 McpInstance.
    McpInstance,
    /// jsmcp.io/v1alpha1 MaintenancePolicy.
    MaintenancePolicy,
    /// jsmcp.io/v1alpha1 BackupSchedule.
    BackupSchedule,
}

impl BackupKind {
    /// Every kind, in restore order: identities and permissions, then configuration, then
    /// Services and workloads, then js-mcp's own resources (which create workloads).
    pub const ALL: [BackupKind; 10] = [
        BackupKind::ServiceAccount,
        BackupKind::Role,
        BackupKind::RoleBinding,
        BackupKind::ConfigMap,
        BackupKind::Secret,
        BackupKind::Service,
        BackupKind::Deployment,
        BackupKind::McpInstance,
        BackupKind::MaintenancePolicy,
        BackupKind::BackupSchedule,
    ];

    /// The kind's name as Kubernetes spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            BackupKind::ConfigMap => "ConfigMap",
            BackupKind::Secret => "Secret",
            BackupKind::Deployment => "Deployment",
            BackupKind::Service => "Service",
            BackupKind::ServiceAccount => "ServiceAccount",
            BackupKind::Role => "Role",
            BackupKind::RoleBinding => "RoleBinding",
            BackupKind::McpInstance => "McpInstance",
            BackupKind::MaintenancePolicy => "MaintenancePolicy",
            BackupKind::BackupSchedule => "BackupSchedule",
        }
    }
}

/// Where snapshots go.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackupDestination {
    /// Directory under the operator's backup volume, relative (no `..`), e.g. `team-a/nightly`.
    /// Default: `<namespace>/<name>` of the BackupSchedule. Relative so that a namespace's
    /// users cannot make the operator write elsewhere on its file system.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 512),
        pattern(r"^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$")
    )]
    pub path: Option<String>,
}

/// Encryption of Secret data in snapshots.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EncryptionSpec {
    /// Secret key holding the encryption key (32 bytes, raw or base64).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_secret_ref: Option<SecretKeyRef>,
    /// Write Secret data unencrypted when no key is given (default false: refuse).
    #[serde(default)]
    pub allow_plaintext_secrets: bool,
}

/// Which snapshots to keep; a snapshot goes when either limit says so.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RetentionSpec {
    /// Newest snapshots kept (default 7).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1000))]
    pub keep_last: Option<i32>,
    /// Snapshots older than this are deleted, e.g. `30d` (default: no age limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32), pattern(r"^([0-9]+(ms|s|m|h|d))+$"))]
    pub max_age: Option<String>,
}

/// Observed state of a BackupSchedule.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackupScheduleStatus {
    /// The generation this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Ready (valid and scheduled) and Degraded (invalid spec, last run failed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// When the last snapshot was started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_schedule_time: Option<Time>,
    /// When the next snapshot is due.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_schedule_time: Option<Time>,
    /// The last snapshot that completed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_successful_snapshot: Option<SnapshotSummary>,
    /// Snapshots on disk, newest first, at most 50.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 50))]
    pub snapshots: Vec<SnapshotRef>,
    /// Why the last run failed, if it did (cleared by a success).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

/// A completed snapshot and what it took.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotSummary {
    /// Snapshot name (its directory or file name).
    pub name: String,
    /// When it completed.
    pub time: Time,
    /// Objects written.
    pub objects: i64,
    /// Bytes written.
    pub bytes: i64,
    /// How long it took, in milliseconds.
    pub duration_ms: i64,
}

/// A snapshot kept on disk.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotRef {
    /// Snapshot name.
    pub name: String,
    /// When it completed.
    pub time: Time,
    /// Objects written.
    pub objects: i64,
    /// Bytes written.
    pub bytes: i64,
    /// Whether Secret data in it is encrypted.
    pub encrypted: bool,
}

impl BackupScheduleStatus {
    /// Puts a snapshot first in the list, dropping the oldest so at most
    /// [`MAX_STATUS_SNAPSHOTS`] stay.
    pub fn push_snapshot(&mut self, snapshot: SnapshotRef) {
        self.snapshots.insert(0, snapshot);
        self.snapshots.truncate(MAX_STATUS_SNAPSHOTS);
    }
}

impl BackupScheduleSpec {
    /// The kinds to take, defaulted (empty = all), in restore order without duplicates.
    pub fn effective_kinds(&self) -> Vec<BackupKind> {
        if self.what.kinds.is_empty() {
            return BackupKind::ALL.to_vec();
        }
        BackupKind::ALL
            .into_iter()
            .filter(|k| self.what.kinds.contains(k))
            .collect()
    }

    /// Whether Secrets are among the kinds taken.
    pub fn includes_secrets(&self) -> bool {
        self.effective_kinds().contains(&BackupKind::Secret)
    }

    /// Snapshots kept, defaulted.
    pub fn keep_last(&self) -> i32 {
        self.retention.keep_last.unwrap_or(DEFAULT_KEEP_LAST)
    }

    /// Maximum snapshot age, if any.
    pub fn max_age(&self) -> Result<Option<Duration>, String> {
        self.retention
            .max_age
            .as_deref()
            .map(|text| parse_duration(text).map_err(|e| format!("spec.retention.maxAge: {e}")))
            .transpose()
    }

    /// The destination directory relative to the backup root: `spec.destination.path`, or
    /// `<namespace>/<name>` of the schedule.
    pub fn destination_path(&self, namespace: &str, name: &str) -> String {
        self.destination
            .path
            .clone()
            .unwrap_or_else(|| format!("{namespace}/{name}"))
    }

    /// Cross-field rules the schema cannot express. Returns every problem, each starting
    /// with the field path.
    pub fn validate(&self) -> Result<(), Vec<String>> {
        let mut problems = Vec::new();
        if let Err(e) = parse_cron(&self.schedule) {
            problems.push(format!("spec.schedule: {e}"));
        }
        if let Some(path) = &self.destination.path
            && let Err(e) = check_relative_path(path)
        {
            problems.push(format!("spec.destination.path: {e}"));
        }
        if self.includes_secrets()
            && self.encryption.key_secret_ref.is_none()
            && !self.encryption.allow_plaintext_secrets
        {
            problems.push(
                "spec.encryption.keySecretRef: required because Secrets are backed up (spec.what.kinds is empty or lists Secret); set a key, leave Secret out of kinds, or set spec.encryption.allowPlaintextSecrets".into(),
            );
        }
        match self.max_age() {
            Err(e) => problems.push(e),
            Ok(Some(age)) if age < Duration::from_secs(3600) => {
                problems.push("spec.retention.maxAge: must be at least 1h".into())
            }
            Ok(_) => {}
        }
        let mut seen = BTreeSet::new();
        for kind in &self.what.kinds {
            if !seen.insert(kind) {
                problems.push(format!(
                    "spec.what.kinds: {} is listed twice",
                    kind.as_str()
                ));
            }
        }
        let mut seen = BTreeSet::new();
        for ns in &self.what.namespaces {
            if !seen.insert(ns) {
                problems.push(format!("spec.what.namespaces: {ns} is listed twice"));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }
}

/// Rejects absolute paths and `.`/`..` segments, so a path stays under the backup root.
fn check_relative_path(path: &str) -> Result<(), String> {
    if path.starts_with('/') {
        return Err(format!(
            "{path:?} must be relative to the operator's backup directory"
        ));
    }
    if path
        .split('/')
        .any(|seg| seg.is_empty() || seg == "." || seg == "..")
    {
        return Err(format!(
            "{path:?} must not contain empty, `.` or `..` segments"
        ));
    }
    Ok(())
}

/// The five fields of a cron expression, each as the set of values it allows (bit `n` = value `n`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CronFields {
    /// Minutes 0–59.
    pub minutes: u64,
    /// Hours 0–23.
    pub hours: u64,
    /// Days of the month 1–31.
    pub days_of_month: u64,
    /// Months 1–12.
    pub months: u64,
    /// Days of the week 0–6, Sunday = 0 (7 is read as Sunday too).
    pub days_of_week: u64,
    /// Whether the day-of-month field was `*`/`?` (cron ORs the two day fields only when both are restricted).
    pub any_day_of_month: bool,
    /// Whether the day-of-week field was `*`/`?`.
    pub any_day_of_week: bool,
}

const MONTH_NAMES: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const DAY_NAMES: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

/// Parses a five-field cron expression (`minute hour day-of-month month day-of-week`) with
/// `*`, `?`, lists, ranges, steps and month/day names. The message names the bad field.
pub fn parse_cron(expr: &str) -> Result<CronFields, String> {
    let fields: Vec<&str> = expr.split_whitespace().collect();
    if fields.len() != 5 {
        return Err(format!(
            "{expr:?} has {} fields; cron needs 5 (minute hour day-of-month month day-of-week)",
            fields.len()
        ));
    }
    let minutes = parse_cron_field(fields[0], "minute", 0, 59, &[])?;
    let hours = parse_cron_field(fields[1], "hour", 0, 23, &[])?;
    let days_of_month = parse_cron_field(fields[2], "day-of-month", 1, 31, &[])?;
    let months = parse_cron_field(fields[3], "month", 1, 12, &MONTH_NAMES)?;
    let mut days_of_week = parse_cron_field(fields[4], "day-of-week", 0, 7, &DAY_NAMES)?;
    if days_of_week & (1 << 7) != 0 {
        days_of_week = (days_of_week & !(1 << 7)) | 1;
    }
    let any = |f: &str| f == "*" || f == "?";
    Ok(CronFields {
        minutes,
        hours,
        days_of_month,
        months,
        days_of_week,
        any_day_of_month: any(fields[2]),
        any_day_of_week: any(fields[4]),
    })
}

/// Parses one cron field into a bit set of the values in `min..=max`. `names[i]` stands for
/// value `min + i` when `min` is 1 (months) or `i` when `min` is 0 (days of the week).
fn parse_cron_field(
    field: &str,
    what: &str,
    min: u32,
    max: u32,
    names: &[&str],
) -> Result<u64, String> {
    let value = |text: &str| -> Result<u32, String> {
        if let Some(i) = names.iter().position(|n| n.eq_ignore_ascii_case(text)) {
            return Ok(min + i as u32);
        }
        let v: u32 = text
            .parse()
            .map_err(|_| format!("{what} field {field:?}: {text:?} is not a number"))?;
        if v < min || v > max {
            return Err(format!(
                "{what} field {field:?}: {v} is outside {min}-{max}"
            ));
        }
        Ok(v)
    };
    let mut set = 0u64;
    for item in field.split(',') {
        let (range, step) = match item.split_once('/') {
            Some((r, s)) => {
                let s: u32 = s
                    .parse()
                    .map_err(|_| format!("{what} field {field:?}: step {s:?} is not a number"))?;
                if s == 0 || s > max {
                    return Err(format!(
                        "{what} field {field:?}: step {s} must be between 1 and {max}"
                    ));
                }
                (r, s)
            }
            None => (item, 1),
        };
        let (lo, hi) = if range == "*" || range == "?" {
            (min, max)
        } else if let Some((a, b)) = range.split_once('-') {
            let (a, b) = (value(a)?, value(b)?);
            if a > b {
                return Err(format!(
                    "{what} field {field:?}: range {range:?} runs backwards"
                ));
            }
            (a, b)
        } else {
            let v = value(range)?;
            // `5/15` means from 5 to the end in steps of 15.
            if item.contains('/') { (v, max) } else { (v, v) }
        };
        let mut v = lo;
        while v <= hi {
            set |= 1 << v;
            v += step;
        }
    }
    Ok(set)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encrypted(schedule: &str) -> BackupScheduleSpec {
        BackupScheduleSpec {
            schedule: schedule.into(),
            encryption: EncryptionSpec {
                key_secret_ref: Some(SecretKeyRef {
                    name: "backup-key".into(),
                    key: "key".into(),
                }),
                allow_plaintext_secrets: false,
            },
            ..Default::default()
        }
    }

    #[test]
    fn cron_fields_expand_lists_ranges_steps_and_names() {
        let c = parse_cron("*/15 3,4 1-5 JAN-mar MON-FRI").unwrap();
        assert_eq!(c.minutes, (1 << 0) | (1 << 15) | (1 << 30) | (1 << 45));
        assert_eq!(c.hours, (1 << 3) | (1 << 4));
        assert_eq!(c.days_of_month, 0b11_1110);
        assert_eq!(c.months, 0b1110);
        assert_eq!(c.days_of_week, 0b11_1110);
        assert!(!c.any_day_of_month && !c.any_day_of_week);

        let daily = parse_cron("0 3 * * *").unwrap();
        assert_eq!(daily.minutes, 1);
        assert_eq!(daily.days_of_month.count_ones(), 31);
        assert!(daily.any_day_of_month && daily.any_day_of_week);

        assert_eq!(
            parse_cron("5/20 * * * 7").unwrap().minutes,
            (1 << 5) | (1 << 25) | (1 << 45)
        );
        assert_eq!(
            parse_cron("0 0 * * 7").unwrap().days_of_week,
            1,
            "7 is Sunday"
        );
    }

    #[test]
    fn cron_errors_name_the_field_and_the_problem() {
        for (bad, why) in [
            ("0 3 * *", "has 4 fields"),
            ("60 * * * *", "minute field \"60\": 60 is outside 0-59"),
            ("* 24 * * *", "hour field"),
            ("* * 0 * *", "day-of-month field \"0\": 0 is outside 1-31"),
            ("* * * 13 *", "month field"),
            ("* * * * 8", "day-of-week field"),
            ("*/0 * * * *", "step 0"),
            ("* 5-2 * * *", "runs backwards"),
            ("* * * FOO *", "\"FOO\" is not a number"),
        ] {
            let err = parse_cron(bad).unwrap_err();
            assert!(err.contains(why), "{bad:?}: {err}");
        }
    }

    #[test]
    fn secrets_without_a_key_are_refused_unless_plaintext_is_allowed() {
        let mut spec = BackupScheduleSpec {
            schedule: "0 3 * * *".into(),
            ..Default::default()
        };
        let p = spec.validate().unwrap_err();
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(p[0].starts_with("spec.encryption.keySecretRef: required"));

        spec.encryption.allow_plaintext_secrets = true;
        assert_eq!(spec.validate(), Ok(()));

        spec.encryption.allow_plaintext_secrets = false;
        spec.what.kinds = vec![BackupKind::ConfigMap, BackupKind::McpInstance];
        assert!(!spec.includes_secrets());
        assert_eq!(spec.validate(), Ok(()));
    }

    #[test]
    fn a_new_schedule_does_not_run_on_create_and_keeps_seven_snapshots() {
        let spec = encrypted("0 3 * * *");
        assert_eq!(spec.validate(), Ok(()));
        assert!(!spec.run_on_create && !spec.suspend);
        assert_eq!(spec.keep_last(), 7);
        assert_eq!(spec.max_age(), Ok(None));
        assert_eq!(spec.destination_path("team-a", "nightly"), "team-a/nightly");
    }

    #[test]
    fn destination_paths_that_escape_the_backup_root_are_invalid() {
        for bad in ["/etc", "a/../../etc", "./a", "a//b"] {
            let mut spec = encrypted("0 3 * * *");
            spec.destination.path = Some(bad.into());
            let p = spec.validate().unwrap_err();
            assert!(p[0].starts_with("spec.destination.path:"), "{bad}: {p:?}");
        }
        let mut ok = encrypted("0 3 * * *");
        ok.destination.path = Some("team-a/nightly.v2".into());
        assert_eq!(ok.validate(), Ok(()));
    }

    #[test]
    fn bad_cron_short_max_age_and_duplicates_are_all_reported() {
        let mut spec = encrypted("0 25 * * *");
        spec.retention.max_age = Some("30m".into());
        spec.what.kinds = vec![BackupKind::Secret, BackupKind::Secret];
        spec.what.namespaces = vec!["a".into(), "a".into()];
        let p = spec.validate().unwrap_err();
        assert_eq!(p.len(), 4, "{p:?}");
        assert!(p[0].starts_with("spec.schedule: hour field"));
        assert!(p[1].starts_with("spec.retention.maxAge: must be at least 1h"));
        assert!(p[2].starts_with("spec.what.kinds: Secret is listed twice"));
        assert!(p[3].starts_with("spec.what.namespaces: a is listed twice"));
    }

    #[test]
    fn effective_kinds_follow_restore_order() {
        let mut spec = encrypted("0 3 * * *");
        assert_eq!(spec.effective_kinds(), BackupKind::ALL.to_vec());
        spec.what.kinds = vec![
            BackupKind::McpInstance,
            BackupKind::Secret,
            BackupKind::ServiceAccount,
        ];
        assert_eq!(
            spec.effective_kinds(),
            [
                BackupKind::ServiceAccount,
                BackupKind::Secret,
                BackupKind::McpInstance
            ]
        );
        assert_eq!(spec.max_age(), Ok(None));
        spec.retention.max_age = Some("30d".into());
        assert_eq!(spec.max_age(), Ok(Some(Duration::from_secs(30 * 86_400))));
    }

    #[test]
    fn status_snapshot_list_keeps_the_newest_fifty() {
        let mut status = BackupScheduleStatus::default();
        for i in 0..(MAX_STATUS_SNAPSHOTS + 3) {
            status.push_snapshot(SnapshotRef {
                name: format!("snap-{i}"),
                time: Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH),
                objects: 1,
                bytes: 1,
                encrypted: true,
            });
        }
        assert_eq!(status.snapshots.len(), MAX_STATUS_SNAPSHOTS);
        assert_eq!(status.snapshots[0].name, "snap-52");
    }
}
