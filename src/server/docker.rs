//! Docker Engine API client for the maintenance tools and workflow steps (bollard).
