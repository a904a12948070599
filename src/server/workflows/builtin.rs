//! The built-in workflows, embedded at compile time from `builtin/*.yaml`.
//!
//! They are ordinary definitions (a `Catalog` validates them like any file), kept as YAML so
//! they double as examples of the format. A unit test in `catalog` proves each one compiles.

/// `(origin, YAML text)` of each built-in workflow.
pub(crate) const SOURCES: [(&str, &str); 3] = [
    (
        "builtin:health-check.yaml",
        include_str!("builtin/health-check.yaml"),
    ),
    (
        "builtin:containerize.yaml",
        include_str!("builtin/containerize.yaml"),
    ),
    (
        "builtin:docker-maintenance.yaml",
        include_str!("builtin/docker-maintenance.yaml"),
    ),
];
