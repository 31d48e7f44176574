//! `quarry/hackernews`: the Hacker News API's items (stories, comments, jobs, polls and poll
//! options) as table `hackernews_items`, incrementally: the id of the last item synced is the
//! cursor, and each sync fetches only the items after it, `item_concurrency` at a time, over the
//! sandbox's HTTP (the API's host must be granted). The spec is CloudQuery's `hackernews` source
//! spec, plus `base_url`.

mod items;

use quarry_sdk::http::Client;
use quarry_sdk::{Error, Info, Plugin, Result, Source, SyncContext, Table};
use schemars::JsonSchema;
use serde::Deserialize;

/// The table, and the key of its cursor in the state backend.
pub const TABLE: &str = "hackernews_items";

/// The `hackernews` source's `spec:`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    /// How many items are fetched at once.
    #[serde(default = "default_concurrency")]
    #[schemars(range(min = 1, max = 10000))]
    pub item_concurrency: u32,
    /// The first sync starts at the first item posted at or after this time (RFC 3339, e.g.
    /// `2024-03-07T11:00:00Z`); without it, at item 1. Later syncs continue after the last item
    /// synced, whatever this says.
    #[serde(default)]
    pub start_time: Option<String>,
    /// Items posted after this time (RFC 3339) are not synced, nor is the cursor moved past them.
    #[serde(default)]
    pub end_time: Option<String>,
    /// The API's base URL; a test points it at a local server.
    #[serde(default = "default_base_url")]
    pub base_url: String,
}

fn default_concurrency() -> u32 {
    100
}

fn default_base_url() -> String {
    "https://hacker-news.firebaseio.com".into()
}

/// The source.
pub struct HackerNews {
    spec: Spec,
    start: Option<i64>,
    end: Option<i64>,
}

/// Seconds since the epoch of an RFC 3339 time in the spec.
fn seconds(field: &str, text: &Option<String>) -> Result<Option<i64>> {
    let Some(text) = text else { return Ok(None) };
    arrow_cast::parse::string_to_timestamp_nanos(text.trim())
        .map(|nanos| Some(nanos.div_euclid(1_000_000_000)))
        .map_err(|e| {
            Error::invalid_spec(format!(
                "{field} `{text}` is not an RFC 3339 time ({e}); write e.g. 2024-03-07T11:00:00Z"
            ))
        })
}

impl Plugin for HackerNews {
    type Spec = Spec;

    fn info() -> Info {
        Info::new(
            "hackernews",
            env!("CARGO_PKG_VERSION"),
            "Hacker News items, synced incrementally from the official API",
        )
        .needs_network("hacker-news.firebaseio.com")
        .needs_network("spec:base_url")
    }

    fn new(spec: Spec) -> Result<Self> {
        let start = seconds("start_time", &spec.start_time)?;
        let end = seconds("end_time", &spec.end_time)?;
        if let (Some(s), Some(e)) = (start, end)
            && e < s
        {
            return Err(Error::invalid_spec("end_time is before start_time"));
        }
        if !spec.base_url.starts_with("http://") && !spec.base_url.starts_with("https://") {
            return Err(Error::invalid_spec(format!(
                "base_url `{}` must start with https:// or http://",
                spec.base_url
            )));
        }
        Ok(HackerNews { spec, start, end })
    }
}

impl HackerNews {
    fn url(&self, path: &str) -> String {
        format!("{}/v0/{path}", self.spec.base_url.trim_end_matches('/'))
    }

    /// The id and time of the first item at or after `id` (up to 20 ids on), or `None`. One
    /// request when `id` holds an item, as it nearly always does; the next 19 together if not.
    fn item_near(&self, client: &Client, id: u64, max: u64) -> Result<Option<(u64, i64)>> {
        let time_of = |result: Result<quarry_sdk::http::Response>| -> Result<Option<i64>> {
            Ok(result?
                .json::<Option<items::Item>>()?
                .and_then(|item| item.time))
        };
        if let Some(time) = time_of(client.get(&self.url(&format!("item/{id}.json"))))? {
            return Ok(Some((id, time)));
        }
        let ids: Vec<u64> = (id + 1..=max.min(id + 19)).collect();
        let urls: Vec<String> = ids
            .iter()
            .map(|i| self.url(&format!("item/{i}.json")))
            .collect();
        for (id, result) in ids.iter().zip(client.get_all(&urls, urls.len())) {
            if let Some(time) = time_of(result)? {
                return Ok(Some((*id, time)));
            }
        }
        Ok(None)
    }

    /// The first item posted at or after `start`: a binary search over ids, which the API
    /// hands out in time order.
    fn first_after(&self, client: &Client, start: i64, max: u64) -> Result<u64> {
        let (mut lo, mut hi) = (1u64, max + 1);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match self.item_near(client, mid, max)? {
                Some((_, time)) if time >= start => hi = mid,
                Some((found, _)) => lo = found + 1,
                // No item in this stretch: ids not in use (yet); the items are later.
                None => lo = (mid + 20).min(hi),
            }
        }
        Ok(lo)
    }
}

impl Source for HackerNews {
    fn tables(&self) -> Vec<Table> {
        vec![items::table()]
    }

    fn sync(&mut self, tables: &[Table], out: &mut SyncContext<'_>) -> Result<()> {
        let Some(table) = tables.iter().find(|t| t.name == TABLE) else {
            return Ok(());
        };
        let client = Client::new();
        let max: u64 = client.get(&self.url("maxitem.json"))?.json()?;
        let mut next = match out.state_get(TABLE)? {
            Some(cursor) => {
                cursor.parse::<u64>().map_err(|_| {
                    Error::internal(format!(
                        "the cursor of {TABLE} is `{cursor}`, not an item id; reset it with `quarry state reset`"
                    ))
                })? + 1
            }
            None => match self.start {
                Some(start) => self.first_after(&client, start, max)?,
                None => 1,
            },
        };
        let concurrency = self.spec.item_concurrency.max(1) as usize;
        // The cursor moves once per chunk: every item of it has been sent.
        let chunk = (concurrency as u64 * 4).max(100);
        quarry_sdk::log::info(
            "syncing items",
            &[("from", &next.to_string()), ("to", &max.to_string())],
        );
        while next <= max {
            let last = (next + chunk - 1).min(max);
            let ids: Vec<u64> = (next..=last).collect();
            let urls: Vec<String> = ids
                .iter()
                .map(|i| self.url(&format!("item/{i}.json")))
                .collect();
            let mut rows = items::Rows::default();
            let mut done = last;
            let mut past_end = false;
            for (id, result) in ids.iter().zip(client.get_all(&urls, concurrency)) {
                // `null`: no item with this id.
                let Some(item) = result?.json::<Option<items::Item>>()? else {
                    continue;
                };
                if let (Some(end), Some(time)) = (self.end, item.time)
                    && time > end
                {
                    done = id - 1;
                    past_end = true;
                    break;
                }
                rows.push(item);
            }
            if !rows.is_empty() {
                out.insert(table, rows.finish()?)?;
            }
            if done >= next {
                out.state_set(TABLE, &done.to_string())?;
            }
            if past_end {
                break;
            }
            next = last + 1;
        }
        Ok(())
    }
}

quarry_sdk::export_source!(HackerNews);
