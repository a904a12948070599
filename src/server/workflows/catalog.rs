//! Loading and validating workflow definitions: the [`Catalog`].
//!
//! Every definition is compiled on load: tools resolved, the DAG checked for cycles,
//! conditions and `${...}` references parsed and bound to step indices, and each reference
//! checked to point at an ancestor (a step that is certain to have finished). A definition
//! that passes cannot fail at run time for structural reasons; one that does not is reported
//! with the file, the workflow, the step and the problem, all problems at once.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use super::definition::{DefinitionFormat, OnError, WorkflowDefinition};
use super::expr::{Expr, Template};
use super::tools::{ALL_TOOLS, Tool};

/// Time limit for one attempt of a step that sets no `timeout`.
pub const DEFAULT_STEP_TIMEOUT: Duration = Duration::from_secs(60);
/// Retries after the first attempt for a `retryable` step without `maxRetries`.
pub const DEFAULT_MAX_RETRIES: u32 = 3;
/// Upper bound on `maxRetries`.
pub const MAX_RETRIES: u32 = 20;
/// Upper bound on steps per workflow, to keep validation and scheduling cheap.
pub const MAX_STEPS: usize = 500;

/// One problem found in a definition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DefinitionError {
    /// Where the definition came from: a file path or `builtin`.
    pub origin: String,
    /// The workflow id, when it could be read.
    pub workflow: Option<String>,
    /// The step, when the problem is in one.
    pub step: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for DefinitionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.origin)?;
        if let Some(w) = &self.workflow {
            write!(f, ": workflow `{w}`")?;
        }
        if let Some(s) = &self.step {
            write!(f, ": step `{s}`")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for DefinitionError {}

/// A step ready to run: everything parsed and bound.
#[derive(Debug)]
pub(crate) struct CompiledStep {
    pub name: String,
    pub tool: Tool,
    pub deps: Vec<usize>,
    pub condition: Option<(Expr, String)>,
    pub params: Template,
    /// `onError` after applying `required: false` (a failure never fails the run).
    pub on_error: OnError,
    pub max_attempts: u32,
    pub timeout: Duration,
}

/// A validated workflow with its execution plan.
#[derive(Debug)]
pub(crate) struct CompiledWorkflow {
    pub definition: WorkflowDefinition,
    pub steps: Vec<CompiledStep>,
    /// For each step, the steps that list it in `dependsOn`.
    pub dependents: Vec<Vec<usize>>,
    /// Steps without dependencies, in definition order.
    pub roots: Vec<usize>,
    /// Time limit of a whole run, if the definition sets one.
    pub timeout: Option<Duration>,
}

/// The workflows a server can run: built-ins plus definitions loaded from directories.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    workflows: BTreeMap<String, Arc<CompiledWorkflow>>,
}

impl Catalog {
    /// The built-in workflows only.
    pub fn builtin() -> Catalog {
        let mut catalog = Catalog::default();
        for (origin, text) in super::builtin::SOURCES {
            // Built-ins are checked by a unit test; one that fails is logged and left out
            // rather than taking the server down.
            match compile_text(text, DefinitionFormat::Yaml, origin) {
                Ok(wf) => {
                    catalog
                        .workflows
                        .insert(wf.definition.id.clone(), Arc::new(wf));
                }
                Err(errors) => {
                    for e in errors {
                        tracing::error!(error = %e, "built-in workflow is invalid");
                    }
                }
            }
        }
        catalog
    }

    /// Built-ins plus every `*.yaml`, `*.yml` and `*.json` file in `dirs` (not recursive).
    /// A file may replace a built-in by using its id; two files with one id are an error.
    /// All problems of all files are returned together.
    pub fn load(dirs: &[PathBuf]) -> Result<Catalog, Vec<DefinitionError>> {
        let mut catalog = Catalog::builtin();
        let builtin_ids: HashSet<String> = catalog.workflows.keys().cloned().collect();
        let mut from_files: HashMap<String, String> = HashMap::new();
        let mut errors = Vec::new();
        for dir in dirs {
            let files = match definition_files(dir) {
                Ok(files) => files,
                Err(message) => {
                    errors.push(DefinitionError {
                        origin: dir.display().to_string(),
                        workflow: None,
                        step: None,
                        message,
                    });
                    continue;
                }
            };
            for (path, format) in files {
                let origin = path.display().to_string();
                let text = match std::fs::read_to_string(&path) {
                    Ok(text) => text,
                    Err(e) => {
                        errors.push(DefinitionError {
                            origin,
                            workflow: None,
                            step: None,
                            message: format!("cannot read file: {e}"),
                        });
                        continue;
                    }
                };
                match compile_text(&text, format, &origin) {
                    Ok(wf) => {
                        let id = wf.definition.id.clone();
                        if let Some(first) = from_files.get(&id) {
                            errors.push(DefinitionError {
                                origin,
                                workflow: Some(id),
                                step: None,
                                message: format!("duplicate workflow id; {first} defines it too"),
                            });
                            continue;
                        }
                        if builtin_ids.contains(&id) {
                            tracing::info!(workflow = %id, file = %origin, "file replaces the built-in workflow");
                        }
                        from_files.insert(id.clone(), origin);
                        catalog.workflows.insert(id, Arc::new(wf));
                    }
                    Err(mut e) => errors.append(&mut e),
                }
            }
        }
        if errors.is_empty() {
            Ok(catalog)
        } else {
            Err(errors)
        }
    }

    /// Builds a catalog from definitions already parsed (e.g. sent to an API), without the
    /// built-ins.
    pub fn from_definitions(
        definitions: Vec<WorkflowDefinition>,
        origin: &str,
    ) -> Result<Catalog, Vec<DefinitionError>> {
        let mut catalog = Catalog::default();
        let mut errors = Vec::new();
        for def in definitions {
            let id = def.id.clone();
            match compile(def, origin) {
                Ok(wf) => {
                    if catalog.workflows.insert(id.clone(), Arc::new(wf)).is_some() {
                        errors.push(DefinitionError {
                            origin: origin.to_owned(),
                            workflow: Some(id),
                            step: None,
                            message: "duplicate workflow id".into(),
                        });
                    }
                }
                Err(mut e) => errors.append(&mut e),
            }
        }
        if errors.is_empty() {
            Ok(catalog)
        } else {
            Err(errors)
        }
    }

    /// Checks one definition without keeping it: the problems, or nothing.
    pub fn validate(definition: &WorkflowDefinition) -> Result<(), Vec<DefinitionError>> {
        compile(definition.clone(), "request").map(|_| ())
    }

    /// A workflow by id.
    pub fn get(&self, id: &str) -> Option<&WorkflowDefinition> {
        self.workflows.get(id).map(|w| &w.definition)
    }

    /// All workflows, sorted by id.
    pub fn list(&self) -> Vec<&WorkflowDefinition> {
        self.workflows.values().map(|w| &w.definition).collect()
    }

    /// Number of workflows.
    pub fn len(&self) -> usize {
        self.workflows.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.workflows.is_empty()
    }

    pub(crate) fn compiled(&self, id: &str) -> Option<Arc<CompiledWorkflow>> {
        self.workflows.get(id).cloned()
    }
}

/// The tools a step may name, with one line each (for `list_tools` and docs).
pub fn known_tools() -> Vec<(&'static str, &'static str)> {
    ALL_TOOLS.iter().map(|t| (t.name(), t.summary())).collect()
}

fn definition_files(dir: &Path) -> Result<Vec<(PathBuf, DefinitionFormat)>, String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("cannot read directory: {e}"))?;
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| format!("cannot list directory: {e}"))?;
        let path = entry.path();
        let format = match path.extension().and_then(|e| e.to_str()) {
            Some("yaml" | "yml") => DefinitionFormat::Yaml,
            Some("json") => DefinitionFormat::Json,
            _ => continue,
        };
        if path.is_file() {
            files.push((path, format));
        }
    }
    // Sorted so that "which file came first" in a duplicate error is stable.
    files.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(files)
}

fn compile_text(
    text: &str,
    format: DefinitionFormat,
    origin: &str,
) -> Result<CompiledWorkflow, Vec<DefinitionError>> {
    let def = WorkflowDefinition::parse(text, format).map_err(|message| {
        vec![DefinitionError {
            origin: origin.to_owned(),
            workflow: None,
            step: None,
            message,
        }]
    })?;
    compile(def, origin)
}

fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

fn valid_step_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'))
        && name.len() <= 128
}

/// Validates and compiles one definition, collecting every problem.
pub(crate) fn compile(
    def: WorkflowDefinition,
    origin: &str,
) -> Result<CompiledWorkflow, Vec<DefinitionError>> {
    let mut errors = Vec::new();
    let workflow = Some(def.id.clone());
    let err = |step: Option<&str>, message: String| DefinitionError {
        origin: origin.to_owned(),
        workflow: workflow.clone(),
        step: step.map(str::to_owned),
        message,
    };

    if !valid_id(&def.id) {
        errors.push(err(
            None,
            "id must be 1-128 characters of letters, digits, `.`, `_` or `-`".into(),
        ));
    }
    if def.name.trim().is_empty() {
        errors.push(err(None, "name must not be empty".into()));
    }
    if def.steps.is_empty() {
        errors.push(err(None, "a workflow needs at least one step".into()));
    }
    if def.steps.len() > MAX_STEPS {
        errors.push(err(
            None,
            format!(
                "{} steps is more than the limit of {MAX_STEPS}",
                def.steps.len()
            ),
        ));
        return Err(errors);
    }
    let timeout = def.timeout.as_ref().and_then(|spec| {
        spec.to_duration()
            .map_err(|e| errors.push(err(None, format!("bad timeout: {e}"))))
            .ok()
    });

    // Names first: everything else refers to steps by name.
    let mut index: HashMap<&str, usize> = HashMap::new();
    for (i, step) in def.steps.iter().enumerate() {
        if !valid_step_name(&step.name) {
            errors.push(err(
                Some(&step.name),
                "step names start with a letter or `_` and hold only letters, digits, `_` and `-` (they are used in `outputs.<name>`)".into(),
            ));
        }
        if index.insert(step.name.as_str(), i).is_some() {
            errors.push(err(Some(&step.name), "duplicate step name".into()));
        }
    }

    let mut deps: Vec<Vec<usize>> = vec![Vec::new(); def.steps.len()];
    for (i, step) in def.steps.iter().enumerate() {
        for dep in &step.depends_on {
            match index.get(dep.as_str()) {
                Some(&j) if j == i => errors.push(err(
                    Some(&step.name),
                    "a step cannot depend on itself".into(),
                )),
                Some(&j) if deps[i].contains(&j) => errors.push(err(
                    Some(&step.name),
                    format!("`{dep}` is listed twice in dependsOn"),
                )),
                Some(&j) => deps[i].push(j),
                None => errors.push(err(
                    Some(&step.name),
                    format!("dependsOn names unknown step `{dep}`"),
                )),
            }
        }
    }

    let order = match topological_order(&deps) {
        Ok(order) => Some(order),
        Err(cycle) => {
            let names: Vec<&str> = cycle.iter().map(|&i| def.steps[i].name.as_str()).collect();
            errors.push(err(
                Some(names[0]),
                format!("dependency cycle: {}", names.join(" -> ")),
            ));
            None
        }
    };
    // ancestors[i][j]: j certainly finishes before i starts.
    let ancestors = order.as_ref().map(|order| {
        let n = def.steps.len();
        let mut anc = vec![vec![false; n]; n];
        for &i in order {
            for &d in &deps[i] {
                anc[i][d] = true;
                let inherited = anc[d].clone();
                for (j, is) in inherited.into_iter().enumerate() {
                    if is {
                        anc[i][j] = true;
                    }
                }
            }
        }
        anc
    });

    let lookup = |name: &str| index.get(name).copied();
    let mut steps = Vec::with_capacity(def.steps.len());
    for (i, step) in def.steps.iter().enumerate() {
        let name = Some(step.name.as_str());
        let tool = Tool::from_name(&step.tool);
        if tool.is_none() {
            errors.push(err(
                name,
                format!(
                    "unknown tool `{}` (known: {})",
                    step.tool,
                    ALL_TOOLS.map(Tool::name).join(", ")
                ),
            ));
        }
        let timeout = match &step.timeout {
            None => DEFAULT_STEP_TIMEOUT,
            Some(spec) => spec.to_duration().unwrap_or_else(|e| {
                errors.push(err(name, format!("bad timeout: {e}")));
                DEFAULT_STEP_TIMEOUT
            }),
        };
        let retries = if step.retryable {
            step.max_retries.unwrap_or(DEFAULT_MAX_RETRIES)
        } else {
            0
        };
        if step.max_retries.is_some_and(|r| r > MAX_RETRIES) {
            errors.push(err(
                name,
                format!("maxRetries must be at most {MAX_RETRIES}"),
            ));
        }
        let check_refs = |what: &str, refs: Vec<usize>, errors: &mut Vec<DefinitionError>| {
            let Some(anc) = &ancestors else { return };
            let mut seen = HashSet::new();
            for r in refs {
                if seen.insert(r) && !anc[i][r] {
                    let target = &def.steps[r].name;
                    let message = if r == i {
                        format!("{what} refers to the step's own output")
                    } else {
                        format!(
                            "{what} refers to step `{target}`, which is not among this step's dependencies (add `{target}` to dependsOn, directly or through another step)"
                        )
                    };
                    errors.push(err(name, message));
                }
            }
        };
        let condition = match &step.condition {
            None => None,
            Some(src) => match Expr::parse(src, &lookup) {
                Ok(expr) => {
                    let mut refs = Vec::new();
                    expr.referenced_steps(&mut refs);
                    check_refs("condition", refs, &mut errors);
                    Some((expr, src.clone()))
                }
                Err(e) => {
                    errors.push(err(name, format!("bad condition `{src}`: {e}")));
                    None
                }
            },
        };
        let params = match Template::compile(&step.params, &lookup) {
            Ok(t) => {
                let mut refs = Vec::new();
                t.referenced_steps(&mut refs);
                check_refs("a parameter", refs, &mut errors);
                if let Some(tool) = tool
                    && let Err(e) = tool.check_params(&step.params, t.is_literal())
                {
                    errors.push(err(name, e));
                }
                t
            }
            Err(e) => {
                errors.push(err(name, format!("bad parameter mapping: {e}")));
                Template::Literal(serde_json::Value::Null)
            }
        };
        let on_error = if !step.required && step.on_error == OnError::Fail {
            OnError::Continue
        } else {
            step.on_error
        };
        steps.push(CompiledStep {
            name: step.name.clone(),
            tool: tool.unwrap_or(Tool::Echo),
            deps: deps[i].clone(),
            condition,
            params,
            on_error,
            max_attempts: retries.min(MAX_RETRIES) + 1,
            timeout,
        });
    }

    if let Some(groups) = &def.parallel_groups {
        let mut grouped: HashMap<usize, usize> = HashMap::new();
        for (g, group) in groups.iter().enumerate() {
            let mut members = Vec::new();
            for member in group {
                match index.get(member.as_str()) {
                    Some(&i) => {
                        if let Some(other) = grouped.insert(i, g)
                            && other != g
                        {
                            errors.push(err(
                                Some(member),
                                format!("is in parallel groups {} and {}", other + 1, g + 1),
                            ));
                        }
                        members.push(i);
                    }
                    None => errors.push(err(
                        None,
                        format!("parallel group {} names unknown step `{member}`", g + 1),
                    )),
                }
            }
            if let Some(anc) = &ancestors {
                for &a in &members {
                    for &b in &members {
                        if anc[a][b] {
                            errors.push(err(
                                Some(&def.steps[a].name),
                                format!(
                                    "parallel group {} lists it with `{}`, which it depends on, so they cannot run in parallel",
                                    g + 1,
                                    def.steps[b].name
                                ),
                            ));
                        }
                    }
                }
            }
        }
    }

    if !errors.is_empty() {
        return Err(errors);
    }
    let mut dependents = vec![Vec::new(); steps.len()];
    for (i, step) in steps.iter().enumerate() {
        for &d in &step.deps {
            dependents[d].push(i);
        }
    }
    let roots = (0..steps.len())
        .filter(|&i| steps[i].deps.is_empty())
        .collect();
    Ok(CompiledWorkflow {
        definition: def,
        steps,
        dependents,
        roots,
        timeout,
    })
}

/// Kahn's algorithm; on a cycle, returns the steps of one cycle in order (first repeated).
fn topological_order(deps: &[Vec<usize>]) -> Result<Vec<usize>, Vec<usize>> {
    let n = deps.len();
    let mut remaining: Vec<usize> = deps.iter().map(Vec::len).collect();
    let mut dependents = vec![Vec::new(); n];
    for (i, ds) in deps.iter().enumerate() {
        for &d in ds {
            dependents[d].push(i);
        }
    }
    let mut queue: Vec<usize> = (0..n).filter(|&i| remaining[i] == 0).collect();
    let mut order = Vec::with_capacity(n);
    while let Some(i) = queue.pop() {
        order.push(i);
        for &j in &dependents[i] {
            remaining[j] -= 1;
            if remaining[j] == 0 {
                queue.push(j);
            }
        }
    }
    if order.len() == n {
        return Ok(order);
    }
    // Walk dependencies among the unfinished steps until one repeats: that loop is a cycle.
    let start = (0..n).find(|&i| remaining[i] > 0).unwrap_or(0);
    let mut path = vec![start];
    let mut current = start;
    loop {
        let Some(&next) = deps[current].iter().find(|&&d| remaining[d] > 0) else {
            return Err(path);
        };
        if let Some(pos) = path.iter().position(|&p| p == next) {
            let mut cycle = path.split_off(pos);
            cycle.reverse();
            cycle.insert(0, *cycle.last().unwrap_or(&next));
            return Err(cycle);
        }
        path.push(next);
        current = next;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors_of(yaml: &str) -> Vec<String> {
        match compile_text(yaml, DefinitionFormat::Yaml, "test.yaml") {
            Ok(_) => Vec::new(),
            Err(errors) => errors.iter().map(ToString::to_string).collect(),
        }
    }

    fn assert_error(yaml: &str, want: &[&str]) {
        let errors = errors_of(yaml);
        assert!(
            errors.iter().any(|e| want.iter().all(|w| e.contains(w))),
            "wanted an error containing {want:?}, got {errors:#?}"
        );
    }

    const HEAD: &str = "id: wf\nname: WF\nsteps:\n";

    #[test]
    fn builtin_workflows_all_compile() {
        for (origin, text) in super::super::builtin::SOURCES {
            if let Err(errors) = compile_text(text, DefinitionFormat::Yaml, origin) {
                panic!("{origin}: {errors:#?}");
            }
        }
        let catalog = Catalog::builtin();
        assert_eq!(catalog.len(), super::super::builtin::SOURCES.len());
        for id in ["health-check", "containerize", "docker-maintenance"] {
            assert!(catalog.get(id).is_some(), "{id} missing");
        }
    }

    #[test]
    fn unknown_tool_names_the_step_and_lists_known_tools() {
        assert_error(
            &format!("{HEAD}  - name: a\n    tool: docker.run\n"),
            &[
                "test.yaml: workflow `wf`: step `a`",
                "unknown tool `docker.run`",
                "docker.ps",
            ],
        );
    }

    #[test]
    fn dependency_cycle_is_reported_with_its_path() {
        let yaml = format!(
            "{HEAD}  - {{name: a, tool: echo, dependsOn: [c]}}\n  - {{name: b, tool: echo, dependsOn: [a]}}\n  - {{name: c, tool: echo, dependsOn: [b]}}\n  - {{name: d, tool: echo}}\n"
        );
        let errors = errors_of(&yaml);
        let cycle = errors
            .iter()
            .find(|e| e.contains("dependency cycle"))
            .unwrap_or_else(|| panic!("{errors:#?}"));
        // Any rotation of a -> b -> c -> a is the same cycle.
        assert!(
            ["a -> b -> c -> a", "b -> c -> a -> b", "c -> a -> b -> c"]
                .iter()
                .any(|c| cycle.contains(c)),
            "{cycle}"
        );
    }

    #[test]
    fn reference_to_a_step_that_is_not_an_ancestor_is_refused() {
        let yaml = format!(
            "{HEAD}  - {{name: a, tool: echo}}\n  - {{name: b, tool: echo}}\n  - name: c\n    tool: echo\n    dependsOn: [a]\n    params: {{x: '${{steps.b.output.v}}'}}\n"
        );
        assert_error(&yaml, &["step `c`", "refers to step `b`", "dependsOn"]);
        let yaml = format!(
            "{HEAD}  - {{name: a, tool: echo}}\n  - {{name: b, tool: echo, condition: 'outputs.c.x > 1'}}\n  - {{name: c, tool: echo, dependsOn: [a]}}\n"
        );
        assert_error(&yaml, &["step `b`", "condition refers to step `c`"]);
        let yaml = format!("{HEAD}  - {{name: a, tool: echo, condition: 'outputs.a.x'}}\n");
        assert_error(&yaml, &["step `a`", "own output"]);
    }

    #[test]
    fn transitive_ancestors_may_be_referenced() {
        let yaml = format!(
            "{HEAD}  - {{name: a, tool: echo, params: {{v: 1}}}}\n  - {{name: b, tool: echo, dependsOn: [a]}}\n  - name: c\n    tool: echo\n    dependsOn: [b]\n    condition: outputs.a.v == 1\n    params: {{x: '${{steps.a.output.v}}'}}\n"
        );
        assert_eq!(errors_of(&yaml), Vec::<String>::new());
    }

    #[test]
    fn bad_conditions_and_mappings_are_named() {
        assert_error(
            &format!("{HEAD}  - {{name: a, tool: echo, condition: 'params.x ==='}}\n"),
            &["step `a`", "bad condition `params.x ===`"],
        );
        assert_error(
            &format!("{HEAD}  - {{name: a, tool: echo, params: {{u: '${{nope.x}}'}}}}\n"),
            &[
                "step `a`",
                "bad parameter mapping",
                "parameter `u`",
                "unknown name `nope`",
            ],
        );
        assert_error(
            &format!("{HEAD}  - {{name: a, tool: echo, params: {{u: '${{outputs.ghost}}'}}}}\n"),
            &["step `a`", "unknown step `ghost`"],
        );
    }

    #[test]
    fn structural_mistakes_are_all_reported_together() {
        let yaml = "id: 'bad id!'\nname: ''\nsteps:\n  - {name: a, tool: echo, dependsOn: [zz]}\n  - {name: s, tool: echo, dependsOn: [s]}\n  - {name: a, tool: echo, timeout: '5 parsecs'}\n  - {name: 9x, tool: http.request}\n  - {name: r, tool: echo, retryable: true, maxRetries: 99}\n";
        let errors = errors_of(yaml);
        for want in [
            "id must be",
            "name must not be empty",
            "unknown step `zz`",
            "depend on itself",
            "duplicate step name",
            "bad timeout",
            "step names start with",
            "needs parameter `url`",
            "maxRetries must be at most",
        ] {
            assert!(
                errors.iter().any(|e| e.contains(want)),
                "{want}: {errors:#?}"
            );
        }
    }

    #[test]
    fn parallel_groups_must_name_independent_steps() {
        let yaml = format!(
            "{HEAD}  - {{name: a, tool: echo}}\n  - {{name: b, tool: echo, dependsOn: [a]}}\nparallelGroups: [[a, b], [ghost]]\n"
        );
        let errors = errors_of(&yaml);
        assert!(
            errors.iter().any(|e| e.contains("cannot run in parallel")),
            "{errors:#?}"
        );
        assert!(
            errors.iter().any(|e| e.contains("unknown step `ghost`")),
            "{errors:#?}"
        );
        let ok = format!(
            "{HEAD}  - {{name: a, tool: echo}}\n  - {{name: b, tool: echo}}\nparallelGroups: [[a, b]]\n"
        );
        assert_eq!(errors_of(&ok), Vec::<String>::new());
    }

    #[test]
    fn required_false_turns_fail_into_continue() {
        let wf = compile_text(
            &format!("{HEAD}  - {{name: a, tool: echo, required: false}}\n  - {{name: b, tool: echo, required: false, onError: skip}}\n"),
            DefinitionFormat::Yaml,
            "t",
        )
        .expect("valid");
        assert_eq!(wf.steps[0].on_error, OnError::Continue);
        assert_eq!(wf.steps[1].on_error, OnError::Skip);
    }

    #[test]
    fn retries_and_timeouts_get_defaults() {
        let wf = compile_text(
            &format!("{HEAD}  - {{name: a, tool: echo, retryable: true}}\n  - {{name: b, tool: echo, maxRetries: 5}}\n  - {{name: c, tool: echo, retryable: true, maxRetries: 1, timeout: 250}}\n"),
            DefinitionFormat::Yaml,
            "t",
        )
        .expect("valid");
        let attempts: Vec<u32> = wf.steps.iter().map(|s| s.max_attempts).collect();
        assert_eq!(attempts, vec![DEFAULT_MAX_RETRIES + 1, 1, 2]);
        assert_eq!(wf.steps[0].timeout, DEFAULT_STEP_TIMEOUT);
        assert_eq!(wf.steps[2].timeout, Duration::from_millis(250));
    }

    #[test]
    fn load_reads_yaml_and_json_files_and_reports_every_bad_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let write = |name: &str, text: &str| {
            std::fs::write(dir.path().join(name), text).expect("write");
        };
        write(
            "one.yaml",
            "id: one\nname: One\nsteps: [{name: a, tool: echo}]\n",
        );
        write(
            "two.json",
            r#"{"id":"two","name":"Two","steps":[{"name":"a","tool":"set"}]}"#,
        );
        write("notes.txt", "ignored");
        let catalog = Catalog::load(&[dir.path().to_path_buf()]).expect("loads");
        assert!(catalog.get("one").is_some() && catalog.get("two").is_some());
        assert!(catalog.get("health-check").is_some(), "built-ins are kept");
        let ids: Vec<&str> = catalog.list().iter().map(|d| d.id.as_str()).collect();
        let mut sorted = ids.clone();
        sorted.sort();
        assert_eq!(ids, sorted);

        write(
            "dup.yaml",
            "id: one\nname: Again\nsteps: [{name: a, tool: echo}]\n",
        );
        write("broken.yaml", "id: [\n");
        write(
            "bad.yaml",
            "id: bad\nname: Bad\nsteps: [{name: a, tool: nope}]\n",
        );
        let errors = Catalog::load(&[dir.path().to_path_buf(), dir.path().join("missing")])
            .expect_err("bad files");
        let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert!(
            text.iter()
                .any(|e| e.contains("broken.yaml") && e.contains("invalid YAML")),
            "{text:#?}"
        );
        assert!(
            text.iter()
                .any(|e| e.contains("bad.yaml") && e.contains("unknown tool `nope`")),
            "{text:#?}"
        );
        assert!(
            text.iter().any(|e| e.contains("duplicate workflow id")),
            "{text:#?}"
        );
        assert!(
            text.iter()
                .any(|e| e.contains("missing") && e.contains("cannot read directory")),
            "{text:#?}"
        );
    }

    #[test]
    fn a_file_may_replace_a_builtin() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            dir.path().join("hc.yaml"),
            "id: health-check\nname: Mine\nsteps: [{name: a, tool: echo}]\n",
        )
        .expect("write");
        let catalog = Catalog::load(&[dir.path().to_path_buf()]).expect("loads");
        assert_eq!(
            catalog.get("health-check").map(|d| d.name.as_str()),
            Some("Mine")
        );
    }
}
