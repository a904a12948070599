//! Workflow definitions, validation and the DAG engine.
