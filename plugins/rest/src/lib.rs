//! `quarry/rest`: REST APIs described in the spec, no code (dlt's `rest_api` vocabulary). Each
//! resource is an endpoint whose records (found by `data_selector`) become the rows of a table;
//! pages follow one another as the paginator says; a resource whose params `resolve` fields of
//! another's records is that resource's child table, requested once per parent row. Requests go
//! through the SDK's HTTP client (retries on 429 and 5xx, `Retry-After`), inside the sandbox:
//! only to hosts the spec grants.

mod auth;
mod paginate;
mod records;
pub mod spec;

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Duration;

use arrow_array::{Array, RecordBatch};
use quarry_sdk::http::{Client, Request, Response};
use quarry_sdk::{ChildRows, Error, Info, Plugin, Relation, Result, Source, SyncContext, Table};
use serde_json::Value;

use crate::auth::Auth;
use crate::paginate::{Call, Pager};
pub use crate::spec::Spec;
use crate::spec::{
    EndpointSpec, IncrementalSpec, PaginatorSpec, ParamSpec, SpecialParam, WriteDisposition,
};

/// How requests are sent: the SDK's client inside a component; a test's fake natively.
pub trait Transport {
    fn send_all(&self, requests: &[Request], concurrency: usize) -> Vec<Result<Response>>;
}

impl Transport for Client {
    fn send_all(&self, requests: &[Request], concurrency: usize) -> Vec<Result<Response>> {
        Client::send_all(self, requests, concurrency)
    }
}

/// A resource with every default applied.
#[derive(Debug, Clone)]
struct Resource {
    name: String,
    method: String,
    path: String,
    /// Parameters with fixed values.
    params: Vec<(String, String)>,
    /// Parameters taken from each parent record: (parameter, field of the parent).
    resolve: Vec<(String, String)>,
    parent: Option<String>,
    json: Option<Value>,
    data_selector: Option<String>,
    paginator: Option<PaginatorSpec>,
    incremental: Option<IncrementalSpec>,
    primary_key: Vec<String>,
    columns: BTreeMap<String, String>,
    description: Option<String>,
}

/// What every request shares.
struct Shared {
    transport: Box<dyn Transport>,
    base_url: String,
    headers: Vec<(String, String)>,
    params: Vec<(String, String)>,
    auth: RefCell<Auth>,
    concurrency: usize,
}

/// A parameter's value as the query carries it: strings as they are, the rest as JSON.
fn param_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

impl Shared {
    /// `path` joined to the base URL, its `{name}` placeholders filled from `values`.
    fn url(&self, resource: &str, path: &str, values: &[(String, String)]) -> Result<String> {
        let mut path = path.to_string();
        for (name, value) in values {
            let placeholder = format!("{{{name}}}");
            // A path that is one placeholder takes a whole URL (a record's `comments_url`).
            path = if path == placeholder {
                value.clone()
            } else {
                path.replace(&placeholder, &paginate::encode(value))
            };
        }
        if let Some(start) = path.find('{')
            && let Some(len) = path[start..].find('}')
        {
            return Err(Error::invalid_spec(format!(
                "resources: `{resource}`: path placeholder `{}` is no parameter of the \
                 resource; add it under `params` (a value, or `{{type: resolve, resource, field}}`)",
                &path[start..=start + len]
            )));
        }
        if path.starts_with("http://") || path.starts_with("https://") {
            return Ok(path);
        }
        Ok(format!(
            "{}/{}",
            self.base_url.trim_end_matches('/'),
            path.trim_start_matches('/')
        ))
    }

    /// Sends calls (authenticated), up to `concurrency` at once; a 401 with a renewable token
    /// is sent again once with a new one.
    fn send(&self, calls: &[Call]) -> Vec<Result<Response>> {
        let requests: Vec<Result<Request>> = calls
            .iter()
            .map(|c| {
                self.auth
                    .borrow_mut()
                    .request(self.transport.as_ref(), c, &self.headers)
            })
            .collect();
        let ready: Vec<Request> = requests
            .iter()
            .filter_map(|r| r.as_ref().ok().cloned())
            .collect();
        let mut answers = self
            .transport
            .send_all(&ready, self.concurrency)
            .into_iter();
        let mut results: Vec<Result<Response>> = requests
            .into_iter()
            .map(|r| match r {
                Ok(_) => answers
                    .next()
                    .unwrap_or_else(|| Err(Error::internal("no response"))),
                Err(e) => Err(e),
            })
            .collect();
        let refused = results
            .iter()
            .any(|r| r.as_ref().is_ok_and(|r| r.status == 401));
        if refused && self.auth.borrow_mut().refused() {
            for (i, call) in calls.iter().enumerate() {
                if results[i].as_ref().is_ok_and(|r| r.status == 401) {
                    results[i] = self
                        .auth
                        .borrow_mut()
                        .request(self.transport.as_ref(), call, &self.headers)
                        .and_then(|request| {
                            self.transport
                                .send_all(&[request], 1)
                                .pop()
                                .unwrap_or_else(|| Err(Error::internal("no response")))
                        });
                }
            }
        }
        results
    }
}

/// An answer's JSON, or an error naming the resource, the page and the status.
fn body(resource: &str, page: usize, response: Result<Response>) -> Result<(Response, Value)> {
    let context = |e: Error| e.context(format!("resource `{resource}`, page {page}"));
    let response = response.map_err(context)?;
    response.ok().map_err(context)?;
    let value = serde_json::from_slice(&response.body).map_err(|e| {
        context(Error::internal(format!(
            "{}: the answer is not JSON ({e}); it starts with `{}`",
            response.url,
            String::from_utf8_lossy(&response.body[..response.body.len().min(200)])
        )))
    })?;
    Ok((response, value))
}

/// How many of a parent's sampled records a child's columns are looked for under.
const CHILD_SAMPLES: usize = 10;

/// The source.
pub struct Rest {
    shared: Rc<Shared>,
    resources: Vec<Resource>,
    tables: Option<Vec<Table>>,
}

impl Rest {
    /// The source with `transport` for its requests (a test's fake).
    pub fn with_transport(spec: Spec, transport: Box<dyn Transport>) -> Result<Rest> {
        let base_url = spec.client.base_url.trim().to_string();
        if !base_url.starts_with("http://") && !base_url.starts_with("https://") {
            return Err(Error::invalid_spec(format!(
                "client.base_url `{base_url}` must start with https:// or http://"
            )));
        }
        let defaults = &spec.resource_defaults;
        let endpoint_defaults = defaults.endpoint.clone().unwrap_or_default();
        let mut resources: Vec<Resource> = Vec::new();
        for r in &spec.resources {
            let invalid =
                |what: String| Error::invalid_spec(format!("resources: `{}`: {what}", r.name));
            if r.name.is_empty() || resources.iter().any(|o| o.name == r.name) {
                return Err(invalid("names must be unique and not empty".into()));
            }
            let endpoint = match &r.endpoint {
                EndpointSpec::Path(path) => spec::Endpoint {
                    path: path.clone(),
                    method: "GET".into(),
                    params: BTreeMap::new(),
                    json: None,
                    data_selector: None,
                    paginator: None,
                    incremental: None,
                },
                EndpointSpec::Full(e) => (**e).clone(),
            };
            let method = endpoint.method.to_ascii_uppercase();
            if method != "GET" && method != "POST" {
                return Err(invalid(format!("method `{method}`: GET or POST")));
            }
            let mut params = Vec::new();
            let mut resolve = Vec::new();
            let mut parent: Option<String> = None;
            let merged = endpoint_defaults
                .params
                .iter()
                .filter(|(k, _)| !endpoint.params.contains_key(*k))
                .chain(endpoint.params.iter());
            for (name, param) in merged {
                match param {
                    ParamSpec::Value(v) => params.push((name.clone(), param_text(v))),
                    ParamSpec::Special(SpecialParam::Resolve { resource, field }) => {
                        if parent.as_ref().is_some_and(|p| p != resource) {
                            return Err(invalid(
                                "`resolve` params name two resources; a resource has one parent"
                                    .into(),
                            ));
                        }
                        if !resources.iter().any(|o| &o.name == resource) {
                            return Err(invalid(format!(
                                "param `{name}` resolves from resource `{resource}`, which is \
                                 not listed before it"
                            )));
                        }
                        parent = Some(resource.clone());
                        resolve.push((name.clone(), field.clone()));
                    }
                }
            }
            let disposition = r.write_disposition.or(defaults.write_disposition);
            let primary_key = match disposition {
                Some(WriteDisposition::Append) => Vec::new(),
                _ => r
                    .primary_key
                    .as_ref()
                    .or(defaults.primary_key.as_ref())
                    .map(spec::Keys::names)
                    .unwrap_or_default(),
            };
            if disposition == Some(WriteDisposition::Merge) && primary_key.is_empty() {
                return Err(invalid(
                    "write_disposition `merge` needs a primary_key".into(),
                ));
            }
            if parent.is_some() && endpoint.incremental.is_some() {
                return Err(invalid(
                    "incremental: a child resource (one with `resolve` params) is read whole for                      each parent row; put the cursor on the parent"
                        .into(),
                ));
            }
            if let Some(inc) = &endpoint.incremental
                && let Some(end) = &inc.end_value
                && inc.end_param.is_none()
            {
                return Err(invalid(format!(
                    "incremental: end_value `{end}` needs end_param, the parameter it is sent as"
                )));
            }
            resources.push(Resource {
                name: r.name.clone(),
                method,
                path: endpoint.path,
                params,
                resolve,
                parent,
                json: endpoint.json,
                data_selector: endpoint
                    .data_selector
                    .or(endpoint_defaults.data_selector.clone()),
                paginator: endpoint
                    .paginator
                    .or(endpoint_defaults.paginator.clone())
                    .or(spec.client.paginator.clone()),
                incremental: endpoint.incremental,
                primary_key,
                columns: r.columns.clone(),
                description: r.description.clone(),
            });
        }
        if resources.is_empty() {
            return Err(Error::invalid_spec("resources: list at least one endpoint"));
        }
        let mut headers: Vec<(String, String)> = spec
            .client
            .headers
            .iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
            .collect();
        if !headers.iter().any(|(k, _)| k == "accept") {
            headers.push(("accept".into(), "application/json".into()));
        }
        Ok(Rest {
            shared: Rc::new(Shared {
                transport,
                base_url,
                headers,
                params: spec
                    .client
                    .params
                    .iter()
                    .map(|(k, v)| (k.clone(), param_text(v)))
                    .collect(),
                auth: RefCell::new(Auth::new(spec.client.auth.as_ref())),
                concurrency: spec.concurrency.max(1),
            }),
            resources,
            tables: None,
        })
    }

    fn resource(&self, name: &str) -> Option<&Resource> {
        self.resources.iter().find(|r| r.name == name)
    }
}

fn client(spec: &Spec) -> Client {
    Client::new()
        .timeout(Duration::from_secs(spec.client.timeout_seconds.max(1)))
        .retries(spec.client.retries, Duration::from_millis(250))
}

impl Plugin for Rest {
    type Spec = Spec;

    fn info() -> Info {
        Info::new(
            "rest",
            env!("CARGO_PKG_VERSION"),
            "REST APIs described in the spec: resources, pagination, auth, incremental cursors, parent/child endpoints",
        )
        .needs_network("spec:client.base_url")
        .needs_network("spec:client.auth.access_token_url")
    }

    fn new(spec: Spec) -> Result<Self> {
        let transport = Box::new(client(&spec));
        Rest::with_transport(spec, transport)
    }
}

/// The first call of a resource: its URL, the client's and its own params, the cursor, and the
/// paginator's first parameters.
fn first_call(
    shared: &Shared,
    resource: &Resource,
    resolved: &[(String, String)],
    cursor: Option<&Value>,
    pager: &Pager,
) -> Result<Call> {
    let mut values = resource.params.clone();
    values.extend(resolved.iter().cloned());
    let url = shared.url(&resource.name, &resource.path, &values)?;
    let mut call = Call {
        method: resource.method.clone(),
        url,
        query: Vec::new(),
        json: resource.json.clone(),
    };
    let in_path = |name: &str| resource.path.contains(&format!("{{{name}}}"));
    for (k, v) in shared.params.iter().chain(&resource.params) {
        if !in_path(k) {
            call.set(k, v.clone());
        }
    }
    for (k, v) in resolved {
        if !in_path(k) {
            call.set(k, v.clone());
        }
    }
    if let Some(inc) = &resource.incremental {
        if let Some(cursor) = cursor {
            call.set(&inc.param, param_text(cursor));
        }
        if let (Some(param), Some(end)) = (&inc.end_param, &inc.end_value) {
            call.set(param, param_text(end));
        }
    }
    pager.first(&mut call);
    Ok(call)
}

/// Orders cursor values: numbers by value, RFC 3339 times by instant, anything else by its
/// text.
fn later(a: &Value, b: &Value) -> bool {
    if let (Some(x), Some(y)) = (a.as_f64(), b.as_f64()) {
        return x > y;
    }
    let instant = |v: &Value| {
        v.as_str()
            .and_then(|t| arrow_cast::parse::string_to_timestamp_nanos(t).ok())
    };
    match (instant(a), instant(b)) {
        // Times by the instant, whatever their fractions or zones.
        (Some(x), Some(y)) => x > y,
        _ => param_text(a) > param_text(b),
    }
}

/// Reads every page of one resource call, handing each page's records to `page`.
fn read_pages(
    shared: &Shared,
    resource: &Resource,
    first: Call,
    first_answer: Option<Result<Response>>,
    mut page: impl FnMut(Vec<&Value>) -> Result<()>,
) -> Result<()> {
    let mut pager = Pager::new(resource.paginator.as_ref());
    let mut call = first;
    let mut answer = first_answer;
    for number in 1usize.. {
        let response = match answer.take() {
            Some(a) => a,
            None => shared
                .send(std::slice::from_ref(&call))
                .pop()
                .unwrap_or_else(|| Err(Error::internal("no response"))),
        };
        let (response, value) = body(&resource.name, number, response)?;
        let records = records::select(&value, resource.data_selector.as_deref(), &resource.name)?;
        let count = records.len();
        page(records)?;
        if number == 1
            && let Some(later) = pager
                .all_pages(&call, &value, count)
                .map_err(|e| e.context(format!("resource `{}`, page 1", resource.name)))?
        {
            // The first answer told how many pages there are: the rest go out together,
            // `concurrency` at a time, and are handed on in order (a failed page stops there,
            // the pages before it kept).
            let mut number = 1;
            for window in later.chunks(shared.concurrency.max(1) * 4) {
                for answer in shared.send(window) {
                    number += 1;
                    let (_, value) = body(&resource.name, number, answer)?;
                    page(records::select(
                        &value,
                        resource.data_selector.as_deref(),
                        &resource.name,
                    )?)?;
                }
            }
            return Ok(());
        }
        match pager
            .next(&call, &response, &value, count)
            .map_err(|e| e.context(format!("resource `{}`, page {number}", resource.name)))?
        {
            Some(next) => call = next,
            None => break,
        }
    }
    Ok(())
}

/// A parent row's value for a `resolve` field: a column of the parent table, or a path into
/// one of its `json` columns (`owner.login`).
fn parent_value(parents: &RecordBatch, row: usize, field: &str, child: &str) -> Result<String> {
    let schema = parents.schema();
    let (column, rest) = match schema.index_of(field) {
        Ok(i) => (i, None),
        Err(_) => {
            let (head, rest) = field.split_once('.').unwrap_or((field, ""));
            let i = schema.index_of(head).map_err(|_| {
                Error::invalid_spec(format!(
                    "resources: `{child}`: the parent has no field `{field}` (its columns: {}); \
                     declare it under the parent's `columns`",
                    schema
                        .fields()
                        .iter()
                        .map(|f| f.name().as_str())
                        .filter(|n| !n.starts_with("_cq_"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            })?;
            (i, Some(rest))
        }
    };
    let array = parents.column(column);
    let missing = || {
        Error::internal(format!(
            "resources: `{child}`: parent row {row} has no value for `{field}`"
        ))
    };
    if array.is_null(row) {
        return Err(missing());
    }
    let extension = quarry_sdk::Extension::of(schema.field(column));
    let bytes = || -> Option<&[u8]> {
        let array = array.as_ref();
        match array.data_type() {
            arrow_schema::DataType::FixedSizeBinary(_) => {
                Some(arrow_array::cast::AsArray::as_fixed_size_binary(array).value(row))
            }
            _ => Some(arrow_array::cast::AsArray::as_binary_opt::<i32>(array)?.value(row)),
        }
    };
    let json = || -> Option<Value> { serde_json::from_slice(bytes()?).ok() };
    match (rest, extension) {
        (Some(path), _) => {
            let value = json().ok_or_else(missing)?;
            records::at_path(&value, path)
                .filter(|v| !v.is_null())
                .map(param_text)
                .ok_or_else(missing)
        }
        (None, Some(quarry_sdk::Extension::Json)) => Ok(param_text(&json().ok_or_else(missing)?)),
        (None, Some(quarry_sdk::Extension::Uuid)) => {
            let mut text = Vec::new();
            quarry_sdk::json::push_uuid(bytes().ok_or_else(missing)?, &mut text);
            Ok(String::from_utf8_lossy(&text).into_owned())
        }
        (None, Some(quarry_sdk::Extension::Inet | quarry_sdk::Extension::Mac)) => {
            Ok(String::from_utf8_lossy(bytes().ok_or_else(missing)?).into_owned())
        }
        (None, None) => {
            let format =
                arrow_cast::display::ArrayFormatter::try_new(array.as_ref(), &Default::default())
                    .map_err(|e| Error::internal(e.to_string()))?;
            Ok(format.value(row).to_string())
        }
    }
}

/// The child requests of one batch of parent rows: each row's first page sent together (up to
/// `concurrency` at once), then each row's later pages in turn.
struct ChildRelation {
    shared: Rc<Shared>,
    resource: Resource,
    table: Table,
    unknown: BTreeMap<String, usize>,
}

impl Relation for ChildRelation {
    fn resolve(&mut self, parents: &RecordBatch, out: &mut ChildRows) -> Result<()> {
        let pager = Pager::new(self.resource.paginator.as_ref());
        let mut calls = Vec::with_capacity(parents.num_rows());
        for row in 0..parents.num_rows() {
            let resolved: Vec<(String, String)> = self
                .resource
                .resolve
                .iter()
                .map(|(param, field)| {
                    Ok((
                        param.clone(),
                        parent_value(parents, row, field, &self.resource.name)?,
                    ))
                })
                .collect::<Result<_>>()?;
            calls.push(first_call(
                &self.shared,
                &self.resource,
                &resolved,
                None,
                &pager,
            )?);
        }
        let answers = self.shared.send(&calls);
        for (row, (call, answer)) in calls.into_iter().zip(answers).enumerate() {
            let (table, unknown) = (&self.table, &mut self.unknown);
            read_pages(
                &self.shared,
                &self.resource,
                call,
                Some(answer),
                |records| {
                    if records.is_empty() {
                        return Ok(());
                    }
                    let columns = records::to_columns(table, &records, unknown)?;
                    out.push(vec![row as u32; records.len()], columns);
                    Ok(())
                },
            )?;
        }
        Ok(())
    }
}

impl Drop for ChildRelation {
    fn drop(&mut self) {
        warn_unknown(&self.resource.name, &self.unknown);
    }
}

fn warn_unknown(resource: &str, unknown: &BTreeMap<String, usize>) {
    if !unknown.is_empty() {
        let keys: Vec<String> = unknown.iter().map(|(k, n)| format!("{k} ({n})")).collect();
        quarry_sdk::log::warn(
            &format!(
                "resource `{resource}`: records held keys the table has no column for, left out: \
                 {}; declare them under `columns` to keep them",
                keys.join(", ")
            ),
            &[],
        );
    }
}

impl Rest {
    /// The records of a resource's first page, to infer its table from (a child's: of the
    /// first of its parent's sampled records whose page has any).
    fn sample(
        &self,
        resource: &Resource,
        samples: &BTreeMap<String, Vec<Value>>,
    ) -> Result<Vec<Value>> {
        let pager = Pager::new(resource.paginator.as_ref());
        let Some(parent) = &resource.parent else {
            let cursor = resource
                .incremental
                .as_ref()
                .and_then(|i| i.initial_value.as_ref());
            let call = first_call(&self.shared, resource, &[], cursor, &pager)?;
            return self.first_page(resource, call);
        };
        // A child: the first page of each of the parent's sampled records in turn (at most
        // `CHILD_SAMPLES`), until one has records.
        let parents = samples.get(parent).map(Vec::as_slice).unwrap_or_default();
        for record in parents.iter().take(CHILD_SAMPLES) {
            let mut values = Vec::new();
            for (param, field) in &resource.resolve {
                let value = records::at_path(record, field)
                    .filter(|v| !v.is_null())
                    .ok_or_else(|| {
                        Error::invalid_spec(format!(
                            "resources: `{}`: a record of `{parent}` has no field `{field}`: `{}`",
                            resource.name,
                            records::preview(record)
                        ))
                    })?;
                values.push((param.clone(), param_text(value)));
            }
            let call = first_call(&self.shared, resource, &values, None, &pager)?;
            let sample = self.first_page(resource, call)?;
            if !sample.is_empty() {
                return Ok(sample);
            }
        }
        if resource.columns.is_empty() {
            return Err(Error::invalid_spec(format!(
                "resources: `{}`: no records to infer its columns from (the first pages of {} \
                 of `{parent}`'s records held none); declare them under `columns`",
                resource.name,
                parents.len().min(CHILD_SAMPLES)
            )));
        }
        Ok(Vec::new())
    }

    /// The records of the first page `call` asks for.
    fn first_page(&self, resource: &Resource, call: Call) -> Result<Vec<Value>> {
        let answer = self.shared.send(std::slice::from_ref(&call)).pop();
        let (_, value) = body(
            &resource.name,
            1,
            answer.unwrap_or_else(|| Err(Error::internal("no response"))),
        )?;
        Ok(
            records::select(&value, resource.data_selector.as_deref(), &resource.name)?
                .into_iter()
                .cloned()
                .collect(),
        )
    }
}

impl Source for Rest {
    fn tables(&self) -> Vec<Table> {
        self.tables.clone().unwrap_or_default()
    }

    fn discover(&mut self) -> Result<Vec<Table>> {
        if let Some(tables) = &self.tables {
            return Ok(tables.clone());
        }
        let mut samples: BTreeMap<String, Vec<Value>> = BTreeMap::new();
        let mut tables = Vec::new();
        for resource in &self.resources {
            let sample = self.sample(resource, &samples)?;
            let sampled: Vec<&Value> = sample.iter().collect();
            let mut table = records::infer(
                &resource.name,
                &sampled,
                &resource.columns,
                &resource.primary_key,
            )?;
            if table.columns.is_empty() {
                return Err(Error::invalid_spec(format!(
                    "resources: `{}`: its first page has no records to infer columns from; \
                     declare them under `columns`",
                    resource.name
                )));
            }
            if let Some(parent) = &resource.parent {
                table = table.child_of(parent);
            }
            if let Some(description) = &resource.description {
                table = table.describe(description);
            }
            if let Some(inc) = &resource.incremental {
                table = table.incremental();
                if let Some(c) = table.columns.iter_mut().find(|c| c.name == inc.cursor_path) {
                    c.incremental_key = true;
                }
            }
            samples.insert(resource.name.clone(), sample);
            tables.push(table);
        }
        self.tables = Some(tables.clone());
        Ok(tables)
    }

    fn sync(&mut self, tables: &[Table], out: &mut SyncContext<'_>) -> Result<()> {
        for table in tables {
            let Some(resource) = self.resource(&table.name).cloned() else {
                continue;
            };
            let key = resource
                .incremental
                .as_ref()
                .map(|inc| format!("{}.{}", resource.name, inc.cursor_path));
            let saved = match &key {
                Some(key) => out
                    .state_get(key)?
                    .map(|text| {
                        serde_json::from_str::<Value>(&text).map_err(|e| {
                            Error::internal(format!(
                                "resource `{}`: the saved cursor `{text}` is not JSON ({e}); \
                                 `quarry state reset` starts over",
                                resource.name
                            ))
                        })
                    })
                    .transpose()?,
                None => None,
            };
            let start = saved.or_else(|| {
                resource
                    .incremental
                    .as_ref()
                    .and_then(|i| i.initial_value.clone())
            });
            let pager = Pager::new(resource.paginator.as_ref());
            let call = first_call(&self.shared, &resource, &[], start.as_ref(), &pager)?;
            // The cursor never moves back (an API that answers `>=` sends the last row again).
            let mut highest: Option<Value> = start.clone();
            let mut unknown = BTreeMap::new();
            let cursor_path = resource.incremental.as_ref().map(|i| i.cursor_path.clone());
            read_pages(&self.shared, &resource, call, None, |records| {
                if records.is_empty() {
                    return Ok(());
                }
                if let Some(path) = &cursor_path {
                    for record in &records {
                        if let Some(v) = records::at_path(record, path).filter(|v| !v.is_null())
                            && highest.as_ref().is_none_or(|h| later(v, h))
                        {
                            highest = Some(v.clone());
                        }
                    }
                }
                let columns = records::to_columns(table, &records, &mut unknown)?;
                out.insert(table, columns)
            })?;
            warn_unknown(&resource.name, &unknown);
            // Every page was read: the cursor moves to the largest value seen (never past a
            // backfill's end).
            if let (Some(key), Some(mut value)) =
                (key, highest.filter(|h| Some(h) != start.as_ref()))
            {
                if let Some(end) = resource
                    .incremental
                    .as_ref()
                    .and_then(|i| i.end_value.as_ref())
                    && later(&value, end)
                {
                    value = end.clone();
                }
                out.state_set(&key, &value.to_string())?;
            }
        }
        Ok(())
    }

    fn relation(&mut self, table: &Table) -> Option<Box<dyn Relation>> {
        let resource = self.resource(&table.name)?.clone();
        Some(Box::new(ChildRelation {
            shared: self.shared.clone(),
            resource,
            table: table.clone(),
            unknown: BTreeMap::new(),
        }))
    }
}

quarry_sdk::export_source!(Rest);

#[cfg(test)]
mod tests;
