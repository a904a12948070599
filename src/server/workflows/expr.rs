//! A tiny, safe expression language for step conditions and `${...}` parameter references.
//!
//! Nothing here evaluates code: expressions are parsed once at load time into a small tree of
//! paths, literals, comparisons and boolean operators, and step names are bound to indices,
//! so a reference to an unknown step is a load error and evaluation is a few lookups.
//!
//! Grammar (lowest precedence first):
//! ```text
//! expr     := coalesce
//! coalesce := or ('??' or)*
//! or       := and (('||' | 'or') and)*
//! and      := unary (('&&' | 'and') unary)*
//! unary    := ('!' | 'not') unary | compare
//! compare  := primary (('==' | '!=' | '<' | '<=' | '>' | '>=') primary)?
//! primary  := number | string | true | false | null | path | 'len' '(' expr ')' | '(' expr ')'
//! path     := params seg* | session seg* | outputs '.' STEP seg*
//!           | steps '.' STEP '.' ('output' seg* | 'status' | 'error')
//! seg      := '.' IDENT | '.' INDEX | '[' INDEX ']' | '[' STRING ']'
//! ```
//! A path that leads nowhere is *missing*: in a condition it behaves as `null`; as the whole
//! value of a parameter it is an error unless a `??` fallback supplies a value.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::fmt::Write as _;

use serde_json::Value;

/// Read access to the data an expression can see, implemented by the engine.
pub(crate) trait Scope {
    /// The run's input parameters.
    fn params(&self) -> &Value;
    /// The session state snapshot given at start.
    fn session(&self) -> &Value;
    /// The output of a completed step, by index.
    fn step_output(&self, step: usize) -> Option<&Value>;
    /// The status of a finished step (`completed`, `failed`, `skipped`, ...), by index.
    fn step_status(&self, step: usize) -> Option<&'static str>;
    /// The error message of a failed step, by index.
    fn step_error(&self, step: usize) -> Option<&str>;
}

/// A parsed expression.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Expr {
    Literal(Value),
    Path(Path),
    Not(Box<Expr>),
    Len(Box<Expr>),
    Binary(BinOp, Box<Expr>, Box<Expr>),
}

/// Binary operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BinOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    And,
    Or,
    Coalesce,
}

/// Where a path starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Root {
    Params,
    Session,
    StepOutput(usize),
    StepStatus(usize),
    StepError(usize),
}

/// One step of a path below its root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Seg {
    Key(String),
    Index(usize),
}

/// A reference into params, session state or a step's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Path {
    pub root: Root,
    pub segs: Vec<Seg>,
}

/// The result of evaluating an expression: borrowed where possible, so conditions over large
/// outputs copy nothing.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Val<'a> {
    Missing,
    Ref(&'a Value),
    Owned(Value),
}

impl<'a> Val<'a> {
    fn value(&self) -> Option<&Value> {
        match self {
            Val::Missing => None,
            Val::Ref(v) => Some(v),
            Val::Owned(v) => Some(v),
        }
    }

    /// The JSON value, or `None` when the expression referred to something that is not there.
    pub fn into_value(self) -> Option<Value> {
        match self {
            Val::Missing => None,
            Val::Ref(v) => Some(v.clone()),
            Val::Owned(v) => Some(v),
        }
    }

    fn is_nullish(&self) -> bool {
        matches!(self.value(), None | Some(Value::Null))
    }
}

/// JavaScript-like truthiness, minus the surprises: null, missing, false, 0, "", [] and {}
/// are false.
pub(crate) fn truthy(v: &Val<'_>) -> bool {
    match v.value() {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(Value::Number(n)) => n.as_f64().is_some_and(|f| f != 0.0),
        Some(Value::String(s)) => !s.is_empty(),
        Some(Value::Array(a)) => !a.is_empty(),
        Some(Value::Object(o)) => !o.is_empty(),
    }
}

impl Expr {
    /// Parses `src`, binding step names through `step_index`.
    pub fn parse(src: &str, step_index: &dyn Fn(&str) -> Option<usize>) -> Result<Expr, String> {
        let tokens = lex(src)?;
        let mut parser = Parser {
            tokens,
            pos: 0,
            step_index,
        };
        let expr = parser.expr()?;
        match parser.peek() {
            None => Ok(expr),
            Some((tok, at)) => Err(format!(
                "unexpected {} at column {}",
                tok.describe(),
                at + 1
            )),
        }
    }

    /// Indices of the steps this expression reads, for the ancestor check.
    pub fn referenced_steps(&self, out: &mut Vec<usize>) {
        match self {
            Expr::Literal(_) => {}
            Expr::Path(p) => match p.root {
                Root::StepOutput(i) | Root::StepStatus(i) | Root::StepError(i) => out.push(i),
                Root::Params | Root::Session => {}
            },
            Expr::Not(e) | Expr::Len(e) => e.referenced_steps(out),
            Expr::Binary(_, a, b) => {
                a.referenced_steps(out);
                b.referenced_steps(out);
            }
        }
    }

    /// Evaluates against `scope`.
    pub fn eval<'a, S: Scope>(&self, scope: &'a S) -> Val<'a> {
        match self {
            Expr::Literal(v) => Val::Owned(v.clone()),
            Expr::Path(p) => p.lookup(scope),
            Expr::Not(e) => Val::Owned(Value::Bool(!truthy(&e.eval(scope)))),
            Expr::Len(e) => {
                let v = e.eval(scope);
                let len = match v.value() {
                    None | Some(Value::Null) => Some(0),
                    Some(Value::Array(a)) => Some(a.len()),
                    Some(Value::Object(o)) => Some(o.len()),
                    Some(Value::String(s)) => Some(s.chars().count()),
                    Some(_) => None,
                };
                Val::Owned(len.map_or(Value::Null, Value::from))
            }
            Expr::Binary(op, a, b) => match op {
                BinOp::And => Val::Owned(Value::Bool(
                    truthy(&a.eval(scope)) && truthy(&b.eval(scope)),
                )),
                BinOp::Or => Val::Owned(Value::Bool(
                    truthy(&a.eval(scope)) || truthy(&b.eval(scope)),
                )),
                BinOp::Coalesce => {
                    let left = a.eval(scope);
                    if left.is_nullish() {
                        b.eval(scope)
                    } else {
                        left
                    }
                }
                BinOp::Eq | BinOp::Ne => {
                    let (l, r) = (a.eval(scope), b.eval(scope));
                    let eq = json_eq(
                        l.value().unwrap_or(&Value::Null),
                        r.value().unwrap_or(&Value::Null),
                    );
                    Val::Owned(Value::Bool(if *op == BinOp::Eq { eq } else { !eq }))
                }
                BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge => {
                    let (l, r) = (a.eval(scope), b.eval(scope));
                    // Values that have no order (null, mixed types) compare false both ways.
                    let holds = match compare(l.value(), r.value()) {
                        None => false,
                        Some(ord) => match op {
                            BinOp::Lt => ord == Ordering::Less,
                            BinOp::Le => ord != Ordering::Greater,
                            BinOp::Gt => ord == Ordering::Greater,
                            _ => ord != Ordering::Less,
                        },
                    };
                    Val::Owned(Value::Bool(holds))
                }
            },
        }
    }
}

impl Path {
    fn lookup<'a, S: Scope>(&self, scope: &'a S) -> Val<'a> {
        let mut current: &'a Value = match self.root {
            Root::Params => scope.params(),
            Root::Session => scope.session(),
            Root::StepOutput(i) => match scope.step_output(i) {
                Some(v) => v,
                None => return Val::Missing,
            },
            Root::StepStatus(i) => {
                return scope
                    .step_status(i)
                    .map_or(Val::Missing, |s| Val::Owned(Value::from(s)));
            }
            Root::StepError(i) => {
                return scope
                    .step_error(i)
                    .map_or(Val::Missing, |s| Val::Owned(Value::from(s)));
            }
        };
        for seg in &self.segs {
            let next = match (seg, current) {
                (Seg::Key(k), Value::Object(map)) => map.get(k),
                (Seg::Index(i), Value::Array(items)) => items.get(*i),
                // `.0` on an object is a key named "0".
                (Seg::Index(i), Value::Object(map)) => map.get(&i.to_string()),
                _ => None,
            };
            match next {
                Some(v) => current = v,
                None => return Val::Missing,
            }
        }
        Val::Ref(current)
    }
}

/// JSON equality where `1 == 1.0`.
fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(i), Some(j)) => i == j,
            _ => x.as_f64() == y.as_f64(),
        },
        _ => a == b,
    }
}

fn compare(a: Option<&Value>, b: Option<&Value>) -> Option<Ordering> {
    match (a?, b?) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(i), Some(j)) => Some(i.cmp(&j)),
            _ => x.as_f64()?.partial_cmp(&y.as_f64()?),
        },
        (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------------
// Lexer

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Num(serde_json::Number),
    Str(String),
    Dot,
    LBracket,
    RBracket,
    LParen,
    RParen,
    Op(BinOp),
    Not,
}

impl Tok {
    fn describe(&self) -> String {
        match self {
            Tok::Ident(s) => format!("`{s}`"),
            Tok::Num(n) => format!("number {n}"),
            Tok::Str(s) => format!("string {s:?}"),
            Tok::Dot => "`.`".into(),
            Tok::LBracket => "`[`".into(),
            Tok::RBracket => "`]`".into(),
            Tok::LParen => "`(`".into(),
            Tok::RParen => "`)`".into(),
            Tok::Not => "`!`".into(),
            Tok::Op(op) => format!("`{}`", op_text(*op)),
        }
    }
}

fn op_text(op: BinOp) -> &'static str {
    match op {
        BinOp::Eq => "==",
        BinOp::Ne => "!=",
        BinOp::Lt => "<",
        BinOp::Le => "<=",
        BinOp::Gt => ">",
        BinOp::Ge => ">=",
        BinOp::And => "&&",
        BinOp::Or => "||",
        BinOp::Coalesce => "??",
    }
}

fn is_ident_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_'
}

fn is_ident_char(c: char) -> bool {
    // `-` is allowed inside names (`usage-before`): the language has no arithmetic.
    c.is_ascii_alphanumeric() || c == '_' || c == '-'
}

fn lex(src: &str) -> Result<Vec<(Tok, usize)>, String> {
    let chars: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let start = i;
        let two = |next: char| chars.get(i + 1) == Some(&next);
        let tok = match c {
            c if c.is_whitespace() => {
                i += 1;
                continue;
            }
            '.' => {
                i += 1;
                Tok::Dot
            }
            '[' => {
                i += 1;
                Tok::LBracket
            }
            ']' => {
                i += 1;
                Tok::RBracket
            }
            '(' => {
                i += 1;
                Tok::LParen
            }
            ')' => {
                i += 1;
                Tok::RParen
            }
            '=' if two('=') => {
                i += 2;
                Tok::Op(BinOp::Eq)
            }
            '!' if two('=') => {
                i += 2;
                Tok::Op(BinOp::Ne)
            }
            '!' => {
                i += 1;
                Tok::Not
            }
            '<' if two('=') => {
                i += 2;
                Tok::Op(BinOp::Le)
            }
            '<' => {
                i += 1;
                Tok::Op(BinOp::Lt)
            }
            '>' if two('=') => {
                i += 2;
                Tok::Op(BinOp::Ge)
            }
            '>' => {
                i += 1;
                Tok::Op(BinOp::Gt)
            }
            '&' if two('&') => {
                i += 2;
                Tok::Op(BinOp::And)
            }
            '|' if two('|') => {
                i += 2;
                Tok::Op(BinOp::Or)
            }
            '?' if two('?') => {
                i += 2;
                Tok::Op(BinOp::Coalesce)
            }
            '"' | '\'' => {
                let (s, end) = lex_string(&chars, i)?;
                i = end;
                Tok::Str(s)
            }
            c if c.is_ascii_digit() && matches!(out.last(), Some((Tok::Dot, _))) => {
                // An index after a dot (`items.0.name`) is an integer; the next `.` is a separator.
                while i < chars.len() && chars[i].is_ascii_digit() {
                    i += 1;
                }
                let text: String = chars[start..i].iter().collect();
                let index: u64 = text
                    .parse()
                    .map_err(|_| format!("invalid index `{text}` at column {}", start + 1))?;
                Tok::Num(index.into())
            }
            c if c.is_ascii_digit()
                || (c == '-' && chars.get(i + 1).is_some_and(|d| d.is_ascii_digit())) =>
            {
                i += 1;
                while i < chars.len()
                    && (chars[i].is_ascii_digit()
                        || matches!(chars[i], '.' | 'e' | 'E')
                        || (matches!(chars[i], '+' | '-') && matches!(chars[i - 1], 'e' | 'E')))
                {
                    i += 1;
                }
                let text: String = chars[start..i].iter().collect();
                let num: serde_json::Number = serde_json::from_str(&text)
                    .map_err(|_| format!("invalid number `{text}` at column {}", start + 1))?;
                Tok::Num(num)
            }
            c if is_ident_start(c) => {
                while i < chars.len() && is_ident_char(chars[i]) {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                match word.as_str() {
                    "and" => Tok::Op(BinOp::And),
                    "or" => Tok::Op(BinOp::Or),
                    "not" => Tok::Not,
                    _ => Tok::Ident(word),
                }
            }
            other => {
                return Err(format!(
                    "unexpected character `{other}` at column {}",
                    start + 1
                ));
            }
        };
        out.push((tok, start));
    }
    Ok(out)
}

fn lex_string(chars: &[char], start: usize) -> Result<(String, usize), String> {
    let quote = chars[start];
    let mut s = String::new();
    let mut i = start + 1;
    while i < chars.len() {
        match chars[i] {
            '\\' => {
                let escaped = chars.get(i + 1).ok_or_else(|| {
                    format!("unterminated string starting at column {}", start + 1)
                })?;
                s.push(match escaped {
                    'n' => '\n',
                    't' => '\t',
                    other => *other,
                });
                i += 2;
            }
            c if c == quote => return Ok((s, i + 1)),
            c => {
                s.push(c);
                i += 1;
            }
        }
    }
    Err(format!(
        "unterminated string starting at column {}",
        start + 1
    ))
}

// ---------------------------------------------------------------------------------------------
// Parser

struct Parser<'a> {
    tokens: Vec<(Tok, usize)>,
    pos: usize,
    step_index: &'a dyn Fn(&str) -> Option<usize>,
}

/// Deepest nesting of parentheses and `!` accepted, so a hostile definition cannot overflow
/// the stack.
const MAX_DEPTH: usize = 64;
/// Longest expression accepted.
const MAX_TOKENS: usize = 4096;

impl Parser<'_> {
    fn peek(&self) -> Option<(&Tok, usize)> {
        self.tokens.get(self.pos).map(|(t, at)| (t, *at))
    }

    /// Takes the next token; advances even at the end so that `pos -= 1` always undoes it.
    fn next(&mut self) -> Option<(Tok, usize)> {
        let t = self.tokens.get(self.pos).cloned();
        self.pos += 1;
        t
    }

    fn eat(&mut self, want: &Tok) -> bool {
        if self.peek().is_some_and(|(t, _)| t == want) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn unexpected(&self, wanted: &str) -> String {
        match self.peek() {
            Some((t, at)) => format!(
                "expected {wanted} at column {}, found {}",
                at + 1,
                t.describe()
            ),
            None => format!("expected {wanted}, found end of expression"),
        }
    }

    fn expr(&mut self) -> Result<Expr, String> {
        if self.tokens.len() > MAX_TOKENS {
            return Err(format!(
                "expression is too long ({} tokens, at most {MAX_TOKENS})",
                self.tokens.len()
            ));
        }
        self.binary_level(0, 0)
    }

    /// Precedence climbing over the three boolean levels; comparisons sit below them.
    fn binary_level(&mut self, level: usize, depth: usize) -> Result<Expr, String> {
        const LEVELS: [BinOp; 3] = [BinOp::Coalesce, BinOp::Or, BinOp::And];
        if depth > MAX_DEPTH {
            return Err("expression nests too deeply".into());
        }
        let Some(&op) = LEVELS.get(level) else {
            return self.unary(depth);
        };
        let mut left = self.binary_level(level + 1, depth)?;
        while self.eat(&Tok::Op(op)) {
            let right = self.binary_level(level + 1, depth)?;
            left = Expr::Binary(op, Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn unary(&mut self, depth: usize) -> Result<Expr, String> {
        if depth > MAX_DEPTH {
            return Err("expression nests too deeply".into());
        }
        if self.eat(&Tok::Not) {
            return Ok(Expr::Not(Box::new(self.unary(depth + 1)?)));
        }
        let left = self.primary(depth)?;
        if let Some((Tok::Op(op), _)) = self.peek() {
            let op = *op;
            if matches!(
                op,
                BinOp::Eq | BinOp::Ne | BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge
            ) {
                self.pos += 1;
                let right = self.primary(depth)?;
                if let Some((Tok::Op(next), at)) = self.peek()
                    && matches!(
                        next,
                        BinOp::Eq | BinOp::Ne | BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge
                    )
                {
                    return Err(format!(
                        "comparisons cannot be chained (column {}); use && between them",
                        at + 1
                    ));
                }
                return Ok(Expr::Binary(op, Box::new(left), Box::new(right)));
            }
        }
        Ok(left)
    }

    fn primary(&mut self, depth: usize) -> Result<Expr, String> {
        let Some((tok, at)) = self.next() else {
            return Err("expected a value, found end of expression".into());
        };
        match tok {
            Tok::Num(n) => Ok(Expr::Literal(Value::Number(n))),
            Tok::Str(s) => Ok(Expr::Literal(Value::String(s))),
            Tok::LParen => {
                let inner = self.binary_level(0, depth + 1)?;
                if !self.eat(&Tok::RParen) {
                    return Err(self.unexpected("`)`"));
                }
                Ok(inner)
            }
            Tok::Ident(word) => match word.as_str() {
                "true" => Ok(Expr::Literal(Value::Bool(true))),
                "false" => Ok(Expr::Literal(Value::Bool(false))),
                "null" => Ok(Expr::Literal(Value::Null)),
                "len" => {
                    if !self.eat(&Tok::LParen) {
                        return Err(self.unexpected("`(` after len"));
                    }
                    let inner = self.binary_level(0, depth + 1)?;
                    if !self.eat(&Tok::RParen) {
                        return Err(self.unexpected("`)`"));
                    }
                    Ok(Expr::Len(Box::new(inner)))
                }
                "params" => Ok(Expr::Path(Path {
                    root: Root::Params,
                    segs: self.segments()?,
                })),
                "session" => Ok(Expr::Path(Path {
                    root: Root::Session,
                    segs: self.segments()?,
                })),
                "outputs" => {
                    let step = self.step_name()?;
                    Ok(Expr::Path(Path {
                        root: Root::StepOutput(step),
                        segs: self.segments()?,
                    }))
                }
                "steps" => {
                    let step = self.step_name()?;
                    if !self.eat(&Tok::Dot) {
                        return Err(self.unexpected("`.output`, `.status` or `.error`"));
                    }
                    match self.next() {
                        Some((Tok::Ident(field), _)) if field == "output" => Ok(Expr::Path(Path {
                            root: Root::StepOutput(step),
                            segs: self.segments()?,
                        })),
                        Some((Tok::Ident(field), _)) if field == "status" => Ok(Expr::Path(Path {
                            root: Root::StepStatus(step),
                            segs: Vec::new(),
                        })),
                        Some((Tok::Ident(field), _)) if field == "error" => Ok(Expr::Path(Path {
                            root: Root::StepError(step),
                            segs: Vec::new(),
                        })),
                        _ => {
                            self.pos -= 1;
                            Err(self.unexpected("`output`, `status` or `error`"))
                        }
                    }
                }
                other => Err(format!(
                    "unknown name `{other}` at column {}: paths start with params, session, outputs or steps",
                    at + 1
                )),
            },
            _ => {
                self.pos -= 1;
                Err(self.unexpected("a value"))
            }
        }
    }

    fn step_name(&mut self) -> Result<usize, String> {
        if !self.eat(&Tok::Dot) {
            return Err(self.unexpected("`.` and a step name"));
        }
        match self.next() {
            Some((Tok::Ident(name), at)) => (self.step_index)(&name)
                .ok_or_else(|| format!("unknown step `{name}` at column {}", at + 1)),
            _ => {
                self.pos -= 1;
                Err(self.unexpected("a step name"))
            }
        }
    }

    fn segments(&mut self) -> Result<Vec<Seg>, String> {
        let mut segs = Vec::new();
        loop {
            if self.eat(&Tok::Dot) {
                match self.next() {
                    Some((Tok::Ident(key) | Tok::Str(key), _)) => segs.push(Seg::Key(key)),
                    Some((Tok::Num(n), _)) if index_of(&n).is_some() => {
                        segs.extend(index_of(&n).map(Seg::Index))
                    }
                    _ => {
                        self.pos -= 1;
                        return Err(self.unexpected("a field name after `.`"));
                    }
                }
            } else if self.eat(&Tok::LBracket) {
                match self.next() {
                    Some((Tok::Num(n), _)) if index_of(&n).is_some() => {
                        segs.extend(index_of(&n).map(Seg::Index))
                    }
                    Some((Tok::Str(key), _)) => segs.push(Seg::Key(key)),
                    _ => {
                        self.pos -= 1;
                        return Err(self.unexpected("an index or a quoted key inside `[]`"));
                    }
                }
                if !self.eat(&Tok::RBracket) {
                    return Err(self.unexpected("`]`"));
                }
            } else {
                return Ok(segs);
            }
        }
    }
}

fn index_of(n: &serde_json::Number) -> Option<usize> {
    n.as_u64().and_then(|i| usize::try_from(i).ok())
}

// ---------------------------------------------------------------------------------------------
// Parameter templates

/// A step's `params` compiled once: literal parts stay JSON, `${...}` parts are expressions.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Template {
    /// No references inside: cloned as is.
    Literal(Value),
    /// A string that is exactly one `${expr}`: keeps the referenced value's JSON type.
    Whole(Box<Expr>, String),
    /// A string mixing text and references: always a string.
    Interp(Vec<Piece>),
    Array(Vec<Template>),
    Object(Vec<(String, Template)>),
}

/// Part of an interpolated string.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Piece {
    Text(String),
    Expr(Expr, String),
}

impl Template {
    /// Compiles `value`; errors name the parameter path (`headers.Authorization`).
    pub fn compile(
        value: &Value,
        step_index: &dyn Fn(&str) -> Option<usize>,
    ) -> Result<Template, String> {
        compile_at(value, step_index, &mut String::new())
    }

    /// Whether resolution is a plain clone.
    pub fn is_literal(&self) -> bool {
        matches!(self, Template::Literal(_))
    }

    /// Step indices referenced anywhere in the template.
    pub fn referenced_steps(&self, out: &mut Vec<usize>) {
        match self {
            Template::Literal(_) => {}
            Template::Whole(e, _) => e.referenced_steps(out),
            Template::Interp(pieces) => {
                for p in pieces {
                    if let Piece::Expr(e, _) = p {
                        e.referenced_steps(out);
                    }
                }
            }
            Template::Array(items) => items.iter().for_each(|t| t.referenced_steps(out)),
            Template::Object(fields) => fields.iter().for_each(|(_, t)| t.referenced_steps(out)),
        }
    }

    /// Produces the concrete parameters; a reference to something missing is an error.
    pub fn resolve<S: Scope>(&self, scope: &S) -> Result<Value, String> {
        match self {
            Template::Literal(v) => Ok(v.clone()),
            Template::Whole(e, src) => e
                .eval(scope)
                .into_value()
                .ok_or_else(|| missing_message(src)),
            Template::Interp(pieces) => {
                let mut out = String::new();
                for piece in pieces {
                    match piece {
                        Piece::Text(t) => out.push_str(t),
                        Piece::Expr(e, src) => match e.eval(scope) {
                            Val::Missing => return Err(missing_message(src)),
                            v => append_display(&mut out, v.value().unwrap_or(&Value::Null)),
                        },
                    }
                }
                Ok(Value::String(out))
            }
            Template::Array(items) => items
                .iter()
                .map(|t| t.resolve(scope))
                .collect::<Result<Vec<_>, _>>()
                .map(Value::Array),
            Template::Object(fields) => {
                let mut map = serde_json::Map::with_capacity(fields.len());
                for (k, t) in fields {
                    map.insert(k.clone(), t.resolve(scope)?);
                }
                Ok(Value::Object(map))
            }
        }
    }
}

fn missing_message(src: &str) -> String {
    format!("`${{{src}}}` refers to a value that is not set (add a fallback with `??`)")
}

/// How a value reads inside a string: strings raw, everything else as compact JSON.
fn append_display(out: &mut String, v: &Value) {
    match v {
        Value::String(s) => out.push_str(s),
        other => {
            let _ = write!(out, "{other}");
        }
    }
}

fn compile_at(
    value: &Value,
    step_index: &dyn Fn(&str) -> Option<usize>,
    path: &mut String,
) -> Result<Template, String> {
    let compiled = match value {
        Value::String(s) => compile_string(s, step_index)
            .map_err(|e| format!("parameter `{}`: {e}", display_path(path)))?,
        Value::Array(items) => {
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                let len = path.len();
                let _ = write!(path, "[{i}]");
                out.push(compile_at(item, step_index, path)?);
                path.truncate(len);
            }
            if out.iter().all(Template::is_literal) {
                Template::Literal(value.clone())
            } else {
                Template::Array(out)
            }
        }
        Value::Object(map) => {
            let mut out = Vec::with_capacity(map.len());
            for (k, item) in map {
                let len = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(k);
                out.push((k.clone(), compile_at(item, step_index, path)?));
                path.truncate(len);
            }
            if out.iter().all(|(_, t)| t.is_literal()) {
                Template::Literal(value.clone())
            } else {
                Template::Object(out)
            }
        }
        other => Template::Literal(other.clone()),
    };
    Ok(compiled)
}

fn display_path(path: &str) -> Cow<'_, str> {
    if path.is_empty() {
        Cow::Borrowed("params")
    } else {
        Cow::Borrowed(path)
    }
}

/// Splits a string into text and `${...}` references; `$${` is a literal `${`.
fn compile_string(s: &str, step_index: &dyn Fn(&str) -> Option<usize>) -> Result<Template, String> {
    if !s.contains("${") {
        return Ok(Template::Literal(Value::String(s.to_owned())));
    }
    let mut pieces: Vec<Piece> = Vec::new();
    let mut text = String::new();
    let mut rest = s;
    while let Some(at) = rest.find("${") {
        if at > 0 && rest[..at].ends_with('$') {
            // `$${` escapes a literal `${`.
            text.push_str(&rest[..at - 1]);
            text.push_str("${");
            rest = &rest[at + 2..];
            continue;
        }
        text.push_str(&rest[..at]);
        let body_start = at + 2;
        let end = find_closing_brace(&rest[body_start..])
            .ok_or_else(|| format!("`${{` without a closing `}}` in {s:?}"))?;
        let src = rest[body_start..body_start + end].trim();
        if src.is_empty() {
            return Err("empty `${}` reference".into());
        }
        let expr = Expr::parse(src, step_index).map_err(|e| format!("in `${{{src}}}`: {e}"))?;
        if !text.is_empty() {
            pieces.push(Piece::Text(std::mem::take(&mut text)));
        }
        pieces.push(Piece::Expr(expr, src.to_owned()));
        rest = &rest[body_start + end + 1..];
    }
    text.push_str(rest);
    if !text.is_empty() {
        pieces.push(Piece::Text(text));
    }
    match pieces.as_slice() {
        [Piece::Expr(e, src)] => Ok(Template::Whole(Box::new(e.clone()), src.clone())),
        [Piece::Text(t)] => Ok(Template::Literal(Value::String(t.clone()))),
        _ => Ok(Template::Interp(pieces)),
    }
}

/// Index of the `}` closing a reference, skipping braces inside quoted strings.
fn find_closing_brace(s: &str) -> Option<usize> {
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        match quote {
            Some(q) => {
                if escaped {
                    escaped = false;
                } else if c == '\\' {
                    escaped = true;
                } else if c == q {
                    quote = None;
                }
            }
            None => match c {
                '"' | '\'' => quote = Some(c),
                '}' => return Some(i),
                _ => {}
            },
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    struct TestScope {
        params: Value,
        session: Value,
        outputs: Vec<Option<Value>>,
        statuses: Vec<Option<&'static str>>,
    }

    impl Scope for TestScope {
        fn params(&self) -> &Value {
            &self.params
        }
        fn session(&self) -> &Value {
            &self.session
        }
        fn step_output(&self, step: usize) -> Option<&Value> {
            self.outputs.get(step).and_then(Option::as_ref)
        }
        fn step_status(&self, step: usize) -> Option<&'static str> {
            self.statuses.get(step).copied().flatten()
        }
        fn step_error(&self, step: usize) -> Option<&str> {
            (self.step_status(step) == Some("failed")).then_some("boom")
        }
    }

    fn steps(name: &str) -> Option<usize> {
        match name {
            "scan" => Some(0),
            "build" => Some(1),
            "usage-before" => Some(2),
            _ => None,
        }
    }

    fn scope() -> TestScope {
        TestScope {
            params: json!({"repo": "acme/api", "replicas": 3, "tags": ["a", "b"], "flag": false}),
            session: json!({"labels": {"env": "prod"}, "metadata": {"owner": "ops"}}),
            outputs: vec![
                Some(json!({"count": 2, "items": [{"name": "x"}], "ratio": 0.5})),
                None,
                Some(json!({"total": 10})),
            ],
            statuses: vec![Some("completed"), Some("failed"), Some("completed")],
        }
    }

    fn eval(src: &str) -> Value {
        let expr = Expr::parse(src, &steps).unwrap_or_else(|e| panic!("{src}: {e}"));
        let s = scope();
        expr.eval(&s)
            .into_value()
            .unwrap_or(Value::String("<missing>".into()))
    }

    #[test]
    fn conditions_compare_outputs_params_and_session() {
        assert_eq!(eval("outputs.scan.count > 0"), json!(true));
        assert_eq!(eval("outputs.scan.count >= 2.0"), json!(true));
        assert_eq!(eval("outputs.scan.ratio < 1"), json!(true));
        assert_eq!(eval("session.labels.env == \"prod\""), json!(true));
        assert_eq!(eval("session.labels.env != 'prod'"), json!(false));
        assert_eq!(
            eval("params.replicas == 3 && params.repo == 'acme/api'"),
            json!(true)
        );
        assert_eq!(eval("params.flag || params.replicas <= 2"), json!(false));
        assert_eq!(
            eval("not params.flag and !(params.replicas > 5)"),
            json!(true)
        );
        assert_eq!(eval("steps.build.status == 'failed'"), json!(true));
        assert_eq!(eval("steps.build.error"), json!("boom"));
        assert_eq!(eval("outputs.usage-before.total"), json!(10));
        assert_eq!(eval("steps.scan.output.items[0].name"), json!("x"));
        assert_eq!(eval("outputs.scan.items.0.name"), json!("x"));
        assert_eq!(eval("session['labels'][\"env\"]"), json!("prod"));
        assert_eq!(eval("len(params.tags) == 2"), json!(true));
        assert_eq!(eval("params.count > -1"), json!(false));
    }

    #[test]
    fn missing_values_are_null_and_never_order() {
        assert_eq!(eval("outputs.build.count > 0"), json!(false));
        assert_eq!(eval("outputs.build.count <= 0"), json!(false));
        assert_eq!(eval("outputs.build == null"), json!(true));
        assert_eq!(eval("params.nope ?? 'fallback'"), json!("fallback"));
        assert_eq!(eval("params.repo ?? 'fallback'"), json!("acme/api"));
        assert_eq!(eval("params.repo > 3"), json!(false));
        assert_eq!(eval("params.nope"), json!("<missing>"));
    }

    #[test]
    fn bad_expressions_name_the_problem() {
        let cases = [
            ("outputs.nosuch.count > 0", "unknown step `nosuch`"),
            ("foo == 1", "unknown name `foo`"),
            ("params.a ==", "expected a value"),
            ("params.a == 1 == 2", "cannot be chained"),
            ("(params.a", "expected `)`"),
            ("params.a = 1", "unexpected character `=`"),
            ("'abc", "unterminated string"),
            ("steps.scan.outputs", "`output`, `status` or `error`"),
            ("params.a params.b", "unexpected `params`"),
            ("len params", "`(` after len"),
        ];
        for (src, want) in cases {
            let err = Expr::parse(src, &steps).expect_err(src);
            assert!(err.contains(want), "{src}: {err}");
        }
    }

    #[test]
    fn deeply_nested_expressions_are_refused_not_overflowed() {
        let src = format!("{}params.a{}", "(".repeat(500), ")".repeat(500));
        let err = Expr::parse(&src, &steps).expect_err("too deep");
        assert!(
            err.contains("too deeply") || err.contains("too long"),
            "{err}"
        );
    }

    #[test]
    fn whole_value_references_keep_json_types() {
        let t = Template::compile(
            &json!({"n": "${params.replicas}", "tags": "${params.tags}", "env": "${session.labels.env}", "out": "${steps.scan.output}"}),
            &steps,
        )
        .expect("compiles");
        let resolved = t.resolve(&scope()).expect("resolves");
        assert_eq!(
            resolved,
            json!({"n": 3, "tags": ["a", "b"], "env": "prod", "out": {"count": 2, "items": [{"name": "x"}], "ratio": 0.5}})
        );
    }

    #[test]
    fn interpolated_strings_render_values_inline() {
        let t = Template::compile(
            &json!([
                "repo=${params.repo} n=${params.replicas} tags=${params.tags}",
                "cost: $${literal}",
                5
            ]),
            &steps,
        )
        .expect("compiles");
        assert_eq!(
            t.resolve(&scope()).expect("resolves"),
            json!([
                "repo=acme/api n=3 tags=[\"a\",\"b\"]",
                "cost: ${literal}",
                5
            ])
        );
    }

    #[test]
    fn templates_without_references_compile_to_literals() {
        let value = json!({"a": [1, "two", {"b": null}]});
        assert_eq!(
            Template::compile(&value, &steps).expect("compiles"),
            Template::Literal(value)
        );
    }

    #[test]
    fn missing_reference_is_an_error_unless_defaulted() {
        let t = Template::compile(&json!({"x": "${params.nope}"}), &steps).expect("compiles");
        let err = t.resolve(&scope()).expect_err("missing");
        assert!(
            err.contains("params.nope") && err.contains("not set"),
            "{err}"
        );
        let t =
            Template::compile(&json!({"x": "v=${outputs.build.id}"}), &steps).expect("compiles");
        assert!(t.resolve(&scope()).is_err());
        let t = Template::compile(&json!({"x": "${params.nope ?? \"}\"}"}), &steps)
            .expect("brace inside quotes");
        assert_eq!(t.resolve(&scope()), Ok(json!({"x": "}"})));
    }

    #[test]
    fn template_errors_name_the_parameter_path() {
        let err = Template::compile(
            &json!({"headers": {"Authorization": "Bearer ${outputs.ghost.token}"}}),
            &steps,
        )
        .expect_err("unknown step");
        assert!(
            err.contains("parameter `headers.Authorization`") && err.contains("ghost"),
            "{err}"
        );
        let err = Template::compile(&json!({"list": ["ok", "${params.a"]}), &steps)
            .expect_err("unclosed");
        assert!(
            err.contains("parameter `list[1]`") && err.contains("closing"),
            "{err}"
        );
        let err = Template::compile(&json!({"x": "${}"}), &steps).expect_err("empty");
        assert!(err.contains("empty"), "{err}");
    }

    #[test]
    fn referenced_steps_are_collected_from_conditions_and_templates() {
        let mut out = Vec::new();
        Expr::parse(
            "outputs.scan.count > 0 || steps.build.status == 'x'",
            &steps,
        )
        .expect("parses")
        .referenced_steps(&mut out);
        Template::compile(&json!({"a": ["${outputs.usage-before.total}"]}), &steps)
            .expect("compiles")
            .referenced_steps(&mut out);
        assert_eq!(out, vec![0, 1, 2]);
    }
}
