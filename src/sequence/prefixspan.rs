//! PrefixSpan: frequent sequential patterns by prefix projection (Pei et al., "PrefixSpan:
//! mining sequential patterns efficiently by prefix-projected pattern growth", ICDE 2001),
//! with itemset elements and an optional maximum gap between consecutive elements.
//!
//! - Input: [`Sequences`] in a linfa `DatasetBase` (no targets): per sequence, events in time
//!   order, each a time (a day number, or the event's position) and a set of items.
//! - Output: [`Patterns`]: every pattern ⟨S1, …, Sk⟩ (Si non-empty itemsets) contained in at
//!   least `ceil(min_support × sequences)` sequences, with that count. A sequence contains it
//!   when events j1 < … < jk exist with Si ⊆ event ji and, with a maximum gap g,
//!   time(j(i+1)) − time(ji) ≤ g.
//! - Parameters ([`PrefixSpanParams`]): `min_support` (an exact fraction, required),
//!   `max_len` (most items in a pattern, default no limit), `max_gap` (default none),
//!   `max_patterns` (default 5,000,000, then an error suggesting a higher support).
//!
//! How: a projected database holds, for each sequence still supporting the prefix, every
//! event at which an embedding of the prefix can end. Keeping all of them, not only the
//! earliest, is what keeps the count exact under a gap constraint (the earliest end may be
//! too far from the next event where a later one is not) and for extensions of the last
//! itemset (which need the last element's event). Extensions are counted once per sequence;
//! frequent ones are projected and grown in turn.
//!
//! # Example
//!
//! Three customers' purchases in time order (day, items); a pattern must be in 2 of the 3:
//!
//! ```
//! use linfa::prelude::*;
//! use ecrm::param::Fraction;
//! use ecrm::sequence::PrefixSpanParams;
//! use ecrm::sequence::prefixspan::Sequences;
//!
//! let mut seqs = Sequences::default();
//! seqs.push([(1, vec!["tent"]), (20, vec!["stove", "mat"])]);
//! seqs.push([(3, vec!["tent"]), (9, vec!["lamp"]), (60, vec!["stove"])]);
//! seqs.push([(5, vec!["stove"])]);
//! let patterns = PrefixSpanParams::new(Fraction { num: 2, den: 3 })
//!     .check()?
//!     .fit(&DatasetBase::new(seqs.clone(), ()))?;
//! let mut found: Vec<(String, u32)> =
//!     (0..patterns.len()).map(|i| (patterns.text(i), patterns.count(i))).collect();
//! found.sort();
//! assert_eq!(found, [("stove".into(), 3), ("tent".into(), 2), ("tent -> stove".into(), 2)]);
//! // Within 30 days, only the first customer bought a stove after the tent.
//! let close = PrefixSpanParams::new(Fraction { num: 2, den: 3 })
//!     .max_gap(Some(30))
//!     .check()?
//!     .fit(&DatasetBase::new(seqs, ()))?;
//! assert!((0..close.len()).all(|i| close.text(i) != "tent -> stove"));
//! # Ok::<(), ecrm::Error>(())
//! ```

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use linfa::ParamGuard;
use linfa::dataset::DatasetBase;
use linfa::traits::Fit;
use rayon::prelude::*;

use crate::basket::Items;
use crate::error::{Error, Result};
use crate::param::Fraction;

/// Sequences of events; an event is a time and a set of item ids.
#[derive(Debug, Clone, Default)]
pub struct Sequences {
    items: Items,
    /// Per event: its time and where its item ids end in `ids`.
    times: Vec<i64>,
    item_ends: Vec<usize>,
    ids: Vec<u32>,
    /// Per sequence: where its events end.
    event_ends: Vec<usize>,
}

impl Sequences {
    /// Adds a sequence of (time, items) events, put in time order (events at one time keep
    /// their order); repeated items in an event count once, empty events are dropped.
    /// Returns false, adding nothing, when no event has an item.
    pub fn push<'s, I>(&mut self, events: impl IntoIterator<Item = (i64, I)>) -> bool
    where
        I: IntoIterator<Item = &'s str>,
    {
        let before = self.times.len();
        let mut events: Vec<(i64, I)> = events.into_iter().collect();
        events.sort_by_key(|e| e.0);
        for (time, items) in events {
            if self.items.push_set(items, &mut self.ids) > 0 {
                self.times.push(time);
                self.item_ends.push(self.ids.len());
            }
        }
        if self.times.len() == before {
            return false;
        }
        self.event_ends.push(self.times.len());
        true
    }

    /// How many sequences.
    pub fn len(&self) -> usize {
        self.event_ends.len()
    }
    pub fn is_empty(&self) -> bool {
        self.event_ends.is_empty()
    }
    /// Item names by id.
    pub fn names(&self) -> &[String] {
        self.items.names()
    }
    /// The events (global indices) of sequence `s`.
    fn events(&self, s: usize) -> std::ops::Range<usize> {
        let start = if s == 0 { 0 } else { self.event_ends[s - 1] };
        start..self.event_ends[s]
    }
    /// The items of event `e`, ascending.
    fn event(&self, e: usize) -> &[u32] {
        let start = if e == 0 { 0 } else { self.item_ends[e - 1] };
        &self.ids[start..self.item_ends[e]]
    }
}

impl linfa::dataset::Records for Sequences {
    type Elem = u32;
    fn nsamples(&self) -> usize {
        self.len()
    }
    fn nfeatures(&self) -> usize {
        self.items.names().len()
    }
}

/// Patterns beyond which mining stops with an error suggesting a higher support, so memory
/// stays bounded.
pub const DEFAULT_MAX_PATTERNS: usize = 5_000_000;

/// PrefixSpan parameters as given.
#[derive(Debug, Clone, PartialEq)]
pub struct PrefixSpanParams(ValidPrefixSpanParams);

/// Checked PrefixSpan parameters: the only kind that fits.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidPrefixSpanParams {
    min_support: Fraction,
    max_len: Option<usize>,
    max_gap: Option<i64>,
    max_patterns: usize,
}

impl PrefixSpanParams {
    /// Patterns in at least `min_support` of the sequences; no length limit, no gap
    /// limit, at most 5,000,000 patterns.
    pub fn new(min_support: Fraction) -> Self {
        PrefixSpanParams(ValidPrefixSpanParams {
            min_support,
            max_len: None,
            max_gap: None,
            max_patterns: DEFAULT_MAX_PATTERNS,
        })
    }
    /// Patterns of at most this many items in all.
    pub fn max_len(mut self, n: Option<usize>) -> Self {
        self.0.max_len = n;
        self
    }
    /// Consecutive elements at most this far apart in time.
    pub fn max_gap(mut self, g: Option<i64>) -> Self {
        self.0.max_gap = g;
        self
    }
    /// Stop with an error beyond this many patterns.
    pub fn max_patterns(mut self, n: usize) -> Self {
        self.0.max_patterns = n;
        self
    }
}

impl ParamGuard for PrefixSpanParams {
    type Checked = ValidPrefixSpanParams;
    type Error = Error;

    fn check_ref(&self) -> Result<&ValidPrefixSpanParams> {
        let p = &self.0;
        let bad = |key: &str, message: String| Err(Error::param(key, message));
        if p.min_support.num == 0 || p.min_support.num > p.min_support.den {
            return bad(
                "min_support",
                format!(
                    "{} is out of range; a share of the sequences above 0 and at most 1",
                    p.min_support
                ),
            );
        }
        if p.max_len == Some(0) {
            return bad("max_len", "must be at least 1".into());
        }
        if p.max_gap.is_some_and(|g| g < 0) {
            return bad("max_gap_days", "must be 0 or more".into());
        }
        if p.max_patterns == 0 {
            return bad("max_patterns", "must be at least 1".into());
        }
        Ok(p)
    }

    fn check(self) -> Result<ValidPrefixSpanParams> {
        self.check_ref()?;
        Ok(self.0)
    }
}

/// Frequent sequential patterns with their counts.
#[derive(Debug, Clone)]
pub struct Patterns {
    names: Vec<String>,
    sequences: u64,
    min_count: u64,
    /// Per pattern: its elements, each a sorted list of item ids.
    patterns: Vec<Vec<Vec<u32>>>,
    counts: Vec<u32>,
}

impl Patterns {
    pub fn len(&self) -> usize {
        self.counts.len()
    }
    pub fn is_empty(&self) -> bool {
        self.counts.is_empty()
    }
    /// The elements of pattern `i`, each a sorted list of item ids.
    pub fn pattern(&self, i: usize) -> &[Vec<u32>] {
        &self.patterns[i]
    }
    /// Sequences containing pattern `i`.
    pub fn count(&self, i: usize) -> u32 {
        self.counts[i]
    }
    pub fn name(&self, id: u32) -> &str {
        &self.names[id as usize]
    }
    pub fn sequences(&self) -> u64 {
        self.sequences
    }
    /// `ceil(min_support × sequences)`.
    pub fn min_count(&self) -> u64 {
        self.min_count
    }
    /// Pattern `i` as text: each element's items sorted by name and joined by ` | `, the
    /// elements joined by ` -> `.
    pub fn text(&self, i: usize) -> String {
        self.patterns[i]
            .iter()
            .map(|el| {
                let mut v: Vec<&str> = el.iter().map(|&id| self.name(id)).collect();
                v.sort_unstable();
                v.join(" | ")
            })
            .collect::<Vec<_>>()
            .join(" -> ")
    }
}

/// A projected database: per supporting sequence, the events where the prefix can end.
struct Projected {
    seqs: Vec<u32>,
    /// `ends[k]` are the end events of `seqs[k]`, ascending, in `events`.
    ends: Vec<(usize, usize)>,
    events: Vec<u32>,
}

struct Grower<'a> {
    data: &'a Sequences,
    min: u32,
    max_len: usize,
    max_gap: Option<i64>,
    cap: usize,
    total: &'a AtomicUsize,
    over: &'a AtomicBool,
}

/// Scratch per thread: per item, the last sequence that counted it and the count so far,
/// for itemset (i) and sequence (s) extensions.
struct Counts {
    seen_i: Vec<u32>,
    count_i: Vec<u32>,
    seen_s: Vec<u32>,
    count_s: Vec<u32>,
    touched: Vec<u32>,
}

impl Counts {
    fn new(n: usize) -> Counts {
        Counts {
            seen_i: vec![u32::MAX; n],
            count_i: vec![0; n],
            seen_s: vec![u32::MAX; n],
            count_s: vec![0; n],
            touched: Vec::new(),
        }
    }
}

impl Grower<'_> {
    /// Whether event `next` may hold the next element after one of `ends` (ascending, in
    /// one sequence): it comes later, and within the gap of the latest end before it (events
    /// are in time order, so that end is the nearest).
    fn reachable(&self, ends: &[u32], next: usize) -> bool {
        let k = ends.partition_point(|&e| (e as usize) < next);
        k > 0
            && self
                .max_gap
                .is_none_or(|g| self.data.times[next] - self.data.times[ends[k - 1] as usize] <= g)
    }

    /// Mines every extension of `prefix` (whose projection is `proj`), appending patterns
    /// and counts to `out`.
    fn grow(
        &self,
        prefix: &mut Vec<Vec<u32>>,
        len: usize,
        proj: &Projected,
        c: &mut Counts,
        out: &mut Vec<(Vec<Vec<u32>>, u32)>,
    ) {
        if len >= self.max_len || self.over.load(Ordering::Relaxed) {
            return;
        }
        let last_item = prefix.last().and_then(|el| el.last()).copied();
        // Count the extensions, once per sequence.
        c.touched.clear();
        for (k, &s) in proj.seqs.iter().enumerate() {
            let (a, b) = proj.ends[k];
            let ends = &proj.events[a..b];
            let seq_end = self.data.events(s as usize).end;
            for &e in ends {
                let e = e as usize;
                if let Some(last) = last_item {
                    for &i in self.data.event(e) {
                        if i > last && c.seen_i[i as usize] != s {
                            if c.count_i[i as usize] == 0 && c.count_s[i as usize] == 0 {
                                c.touched.push(i);
                            }
                            c.seen_i[i as usize] = s;
                            c.count_i[i as usize] += 1;
                        }
                    }
                }
            }
            // Sequence extensions: events after some end (within the gap).
            let first = ends[0] as usize;
            for next in first + 1..seq_end {
                if !self.reachable(ends, next) {
                    continue;
                }
                for &i in self.data.event(next) {
                    if c.seen_s[i as usize] != s {
                        if c.count_i[i as usize] == 0 && c.count_s[i as usize] == 0 {
                            c.touched.push(i);
                        }
                        c.seen_s[i as usize] = s;
                        c.count_s[i as usize] += 1;
                    }
                }
            }
        }
        let mut ext: Vec<(u32, bool, u32)> = Vec::new(); // (item, is itemset extension, count)
        for &i in &c.touched {
            let (ci, cs) = (c.count_i[i as usize], c.count_s[i as usize]);
            if ci >= self.min {
                ext.push((i, true, ci));
            }
            if cs >= self.min {
                ext.push((i, false, cs));
            }
            c.count_i[i as usize] = 0;
            c.count_s[i as usize] = 0;
            c.seen_i[i as usize] = u32::MAX;
            c.seen_s[i as usize] = u32::MAX;
        }
        ext.sort_unstable();
        for (item, itemset, count) in ext {
            if self.over.load(Ordering::Relaxed) {
                return;
            }
            if itemset {
                prefix
                    .last_mut()
                    .expect("an itemset extension has a prefix")
                    .push(item);
            } else {
                prefix.push(vec![item]);
            }
            out.push((prefix.clone(), count));
            if self.total.fetch_add(1, Ordering::Relaxed) + 1 > self.cap {
                self.over.store(true, Ordering::Relaxed);
            }
            // Projected only to be grown: a pattern at the length limit is not (10M synth
            // lines, max-len 3: 3,505 of 4,818 patterns are; not projecting them took the
            // nightly stage from 34 s to 21 s).
            if len + 1 < self.max_len {
                let next = self.project(proj, item, itemset);
                self.grow(prefix, len + 1, &next, c, out);
            }
            if itemset {
                prefix.last_mut().expect("pushed above").pop();
            } else {
                prefix.pop();
            }
        }
    }

    /// The projection of `proj` extended by `item`, as an itemset extension (the end event
    /// must hold it) or a sequence extension (a later event within the gap must).
    fn project(&self, proj: &Projected, item: u32, itemset: bool) -> Projected {
        let mut next = Projected {
            seqs: Vec::new(),
            ends: Vec::new(),
            events: Vec::new(),
        };
        for (k, &s) in proj.seqs.iter().enumerate() {
            let (a, b) = proj.ends[k];
            let ends = &proj.events[a..b];
            let start = next.events.len();
            if itemset {
                for &e in ends {
                    if self.data.event(e as usize).binary_search(&item).is_ok() {
                        next.events.push(e);
                    }
                }
            } else {
                let seq_end = self.data.events(s as usize).end;
                for n in ends[0] as usize + 1..seq_end {
                    if self.data.event(n).binary_search(&item).is_ok() && self.reachable(ends, n) {
                        next.events.push(n as u32);
                    }
                }
            }
            if next.events.len() > start {
                next.seqs.push(s);
                next.ends.push((start, next.events.len()));
            }
        }
        next
    }
}

impl Fit<Sequences, (), Error> for ValidPrefixSpanParams {
    type Object = Patterns;

    fn fit(&self, data: &DatasetBase<Sequences, ()>) -> Result<Patterns> {
        let d = &data.records;
        let n = d.len() as u64;
        let min_count = self.min_support.ceil_mul(n).max(1);
        let mut out = Patterns {
            names: d.names().to_vec(),
            sequences: n,
            min_count,
            patterns: Vec::new(),
            counts: Vec::new(),
        };
        if min_count > n {
            return Ok(out);
        }
        let total = AtomicUsize::new(0);
        let over = AtomicBool::new(false);
        let g = Grower {
            data: d,
            min: min_count as u32,
            max_len: self.max_len.unwrap_or(usize::MAX),
            max_gap: self.max_gap,
            cap: self.max_patterns,
            total: &total,
            over: &over,
        };
        // One-item patterns: every event holding the item is an end.
        let n_items = d.names().len();
        let mut by_item: Vec<Projected> = (0..n_items)
            .map(|_| Projected {
                seqs: Vec::new(),
                ends: Vec::new(),
                events: Vec::new(),
            })
            .collect();
        for s in 0..d.len() {
            for e in d.events(s) {
                for &i in d.event(e) {
                    let p = &mut by_item[i as usize];
                    if p.seqs.last() != Some(&(s as u32)) {
                        p.seqs.push(s as u32);
                        p.ends.push((p.events.len(), p.events.len()));
                    }
                    p.events.push(e as u32);
                    p.ends.last_mut().expect("pushed").1 = p.events.len();
                }
            }
        }
        let parts: Vec<Vec<(Vec<Vec<u32>>, u32)>> = by_item
            .into_par_iter()
            .enumerate()
            .filter(|(_, p)| p.seqs.len() as u64 >= min_count)
            .map_init(
                || Counts::new(n_items),
                |c, (i, proj)| {
                    let mut found = vec![(vec![vec![i as u32]], proj.seqs.len() as u32)];
                    if g.total.fetch_add(1, Ordering::Relaxed) + 1 > g.cap {
                        g.over.store(true, Ordering::Relaxed);
                    }
                    let mut prefix = vec![vec![i as u32]];
                    g.grow(&mut prefix, 1, &proj, c, &mut found);
                    found
                },
            )
            .collect();
        if over.load(Ordering::Relaxed) {
            return Err(Error::Mining {
                algorithm: "PrefixSpan",
                message: format!(
                    "more than {} frequent patterns at min support {} ({min_count} of {n} \
                     sequences); raise --min-support or set --max-len or --max-gap-days",
                    self.max_patterns, self.min_support
                ),
            });
        }
        for (p, c) in parts.into_iter().flatten() {
            out.patterns.push(p);
            out.counts.push(c);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    type Seq = Vec<(i64, Vec<&'static str>)>;

    /// Whether `pattern` embeds in `seq` from event `from` on, after an element matched at
    /// time `prev` (None: the first element).
    fn contains(
        seq: &Seq,
        pattern: &[Vec<&str>],
        from: usize,
        prev: Option<i64>,
        gap: Option<i64>,
    ) -> bool {
        let Some((first, rest)) = pattern.split_first() else {
            return true;
        };
        (from..seq.len()).any(|j| {
            let (t, items) = &seq[j];
            prev.is_none_or(|p| gap.is_none_or(|g| t - p <= g))
                && first.iter().all(|i| items.contains(i))
                && contains(seq, rest, j + 1, Some(*t), gap)
        })
    }

    /// Every pattern of up to `max_len` items over the alphabet, counted by definition.
    fn brute_force(
        db: &[Seq],
        alphabet: &[&'static str],
        min: u32,
        max_len: usize,
        gap: Option<i64>,
    ) -> BTreeMap<String, u32> {
        // Non-empty itemsets of the alphabet, sorted.
        let sets: Vec<Vec<&str>> = (1u32..(1 << alphabet.len()))
            .map(|m| {
                (0..alphabet.len())
                    .filter(|i| m & (1 << i) != 0)
                    .map(|i| alphabet[i])
                    .collect()
            })
            .collect();
        let mut out = BTreeMap::new();
        let mut stack: Vec<Vec<Vec<&str>>> = sets.iter().map(|s| vec![s.clone()]).collect();
        while let Some(p) = stack.pop() {
            let len: usize = p.iter().map(Vec::len).sum();
            if len > max_len {
                continue;
            }
            let count = db.iter().filter(|s| contains(s, &p, 0, None, gap)).count() as u32;
            if count < min {
                continue; // anti-monotone: no extension can be frequent
            }
            out.insert(
                p.iter()
                    .map(|el| el.join(" | "))
                    .collect::<Vec<_>>()
                    .join(" -> "),
                count,
            );
            for s in &sets {
                let mut q = p.clone();
                q.push(s.clone());
                stack.push(q);
            }
        }
        out
    }

    fn mined(
        db: &[Seq],
        support: Fraction,
        max_len: Option<usize>,
        gap: Option<i64>,
    ) -> BTreeMap<String, u32> {
        let mut d = Sequences::default();
        for s in db {
            d.push(s.iter().map(|(t, items)| (*t, items.iter().copied())));
        }
        let p = PrefixSpanParams::new(support)
            .max_len(max_len)
            .max_gap(gap)
            .check()
            .unwrap()
            .fit(&DatasetBase::new(d, ()))
            .unwrap();
        (0..p.len()).map(|i| (p.text(i), p.count(i))).collect()
    }

    #[test]
    fn the_papers_example() {
        // Pei et al. 2001, table 1: ⟨a(abc)(ac)d(cf)⟩, ⟨(ad)c(bc)(ae)⟩, ⟨(ef)(ab)(df)cb⟩,
        // ⟨eg(af)cbc⟩, min support 2: 53 patterns.
        let db: Vec<Seq> = vec![
            vec![
                (1, vec!["a"]),
                (2, vec!["a", "b", "c"]),
                (3, vec!["a", "c"]),
                (4, vec!["d"]),
                (5, vec!["c", "f"]),
            ],
            vec![
                (1, vec!["a", "d"]),
                (2, vec!["c"]),
                (3, vec!["b", "c"]),
                (4, vec!["a", "e"]),
            ],
            vec![
                (1, vec!["e", "f"]),
                (2, vec!["a", "b"]),
                (3, vec!["d", "f"]),
                (4, vec!["c"]),
                (5, vec!["b"]),
            ],
            vec![
                (1, vec!["e"]),
                (2, vec!["g"]),
                (3, vec!["a", "f"]),
                (4, vec!["c"]),
                (5, vec!["b"]),
                (6, vec!["c"]),
            ],
        ];
        let got = mined(&db, "1/2".parse().unwrap(), None, None);
        assert_eq!(got.len(), 53);
        assert_eq!(got["a | b -> c"], 2);
        assert_eq!(got["a -> b | c -> a"], 2);
        let alphabet = ["a", "b", "c", "d", "e", "f", "g"];
        assert_eq!(got, brute_force(&db, &alphabet, 2, usize::MAX, None));
    }

    proptest::proptest! {
        #![proptest_config(proptest::test_runner::Config::with_cases(200))]

        /// PrefixSpan finds exactly the patterns (of up to 3 items) a brute-force count
        /// finds, with and without a maximum gap.
        #[test]
        fn equals_brute_force_on_random_sequences(
            // Per sequence, events as (days after the previous event, items).
            raw in proptest::collection::vec(
                proptest::collection::vec((0..20i64, proptest::collection::vec(0..4usize, 1..4)), 1..6),
                1..12,
            ),
            num in 1..=5u64,
            gap in proptest::option::of(0..15i64),
        ) {
            let alphabet = ["a", "b", "c", "d"];
            let db: Vec<Seq> = raw
                .iter()
                .map(|events| {
                    let mut t = 0;
                    events
                        .iter()
                        .map(|(dt, items)| {
                            t += dt;
                            (t, items.iter().map(|&i| alphabet[i]).collect())
                        })
                        .collect()
                })
                .collect();
            let support = Fraction { num, den: 10 };
            let min = support.ceil_mul(db.len() as u64) as u32;
            proptest::prop_assert_eq!(
                mined(&db, support, Some(3), gap),
                brute_force(&db, &alphabet, min, 3, gap)
            );
        }
    }
}
