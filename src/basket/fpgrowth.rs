//! FP-growth: frequent itemsets by pattern growth over a prefix tree, with no candidate
//! generation (Han, Pei & Yin, "Mining frequent patterns without candidate generation",
//! SIGMOD 2000).
//!
//! - Input: [`Baskets`] in a linfa `DatasetBase` (no targets).
//! - Output: [`FrequentItemsets`]: every itemset whose count (baskets holding all its items) is
//!   at least `ceil(min_support × baskets)`, computed in integer arithmetic, with its count.
//! - Parameters ([`FpGrowthParams`]): `min_support` (an exact [`Fraction`], required),
//!   `max_len` (default: no limit), `max_itemsets` (default 5,000,000: mining stops with an
//!   error suggesting a higher support rather than filling memory).
//!
//! How: items are ranked by descending count (infrequent items dropped); each basket becomes
//! its ranks in ascending order, and the baskets, sorted, are inserted into a prefix tree by
//! sharing each basket's common prefix with the one before, so no child lookups are needed.
//! Mining takes the items from the least frequent up: the item's nodes give its support and
//! its conditional pattern base (the paths above them), whose frequent items make a smaller
//! tree, mined recursively. Nodes are numbered in preorder, so the paths of a conditional base
//! come out nearly sorted and the same prefix sharing builds the conditional trees; where
//! filtering breaks the order, a prefix is merely not shared, which costs memory, not
//! correctness (an item's support is the sum over all its nodes). The top-level items are
//! mined in parallel. There is never a dense basket × item matrix: memory is the tree, at most
//! one node per item occurrence, and the itemsets found.
//!
//! # Example
//!
//! Four baskets; an itemset is frequent in at least half of them (2 of 4):
//!
//! ```
//! use linfa::prelude::*;
//! use ecrm::basket::{Baskets, FpGrowthParams};
//! use ecrm::param::Fraction;
//!
//! let mut baskets = Baskets::default();
//! for b in [vec!["bread", "milk"], vec!["bread", "butter", "milk"], vec!["beer", "bread"], vec!["milk"]] {
//!     baskets.push(b);
//! }
//! let sets = FpGrowthParams::new(Fraction { num: 1, den: 2 })
//!     .check()?
//!     .fit(&DatasetBase::new(baskets, ()))?;
//! assert_eq!(sets.min_count(), 2);
//! let mut found: Vec<(String, u32)> =
//!     (0..sets.len()).map(|i| (sets.names_of(i).join(" "), sets.count(i))).collect();
//! found.sort();
//! assert_eq!(found, [("bread".into(), 3), ("bread milk".into(), 2), ("milk".into(), 3)]);
//! # Ok::<(), ecrm::Error>(())
//! ```

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use linfa::ParamGuard;
use linfa::dataset::DatasetBase;
use linfa::traits::Fit;
use rayon::prelude::*;

use super::{Baskets, Items};
use crate::error::{Error, Result};
use crate::param::Fraction;

/// Itemsets beyond which mining stops with an error suggesting a higher support, so memory
/// stays bounded.
pub const DEFAULT_MAX_ITEMSETS: usize = 5_000_000;

/// FP-growth parameters as given.
#[derive(Debug, Clone, PartialEq)]
pub struct FpGrowthParams(ValidFpGrowthParams);

/// Checked FP-growth parameters: the only kind that fits.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidFpGrowthParams {
    min_support: Fraction,
    max_len: Option<usize>,
    max_itemsets: usize,
}

impl FpGrowthParams {
    /// Itemsets in at least `min_support` of the baskets; no length limit; at most
    /// 5,000,000 itemsets.
    pub fn new(min_support: Fraction) -> FpGrowthParams {
        FpGrowthParams(ValidFpGrowthParams {
            min_support,
            max_len: None,
            max_itemsets: DEFAULT_MAX_ITEMSETS,
        })
    }

    /// Itemsets of at most this many items.
    pub fn max_len(mut self, n: Option<usize>) -> Self {
        self.0.max_len = n;
        self
    }

    /// Stop with an error beyond this many itemsets.
    pub fn max_itemsets(mut self, n: usize) -> Self {
        self.0.max_itemsets = n;
        self
    }
}

impl ParamGuard for FpGrowthParams {
    type Checked = ValidFpGrowthParams;
    type Error = Error;

    fn check_ref(&self) -> Result<&ValidFpGrowthParams> {
        let p = &self.0;
        if p.min_support.num == 0 || p.min_support.num > p.min_support.den {
            return Err(Error::param(
                "min_support",
                format!(
                    "{} is out of range; a share of the baskets above 0 and at most 1",
                    p.min_support
                ),
            ));
        }
        if p.max_len == Some(0) {
            return Err(Error::param("max_len", "must be at least 1"));
        }
        if p.max_itemsets == 0 {
            return Err(Error::param("max_itemsets", "must be at least 1"));
        }
        Ok(p)
    }

    fn check(self) -> Result<ValidFpGrowthParams> {
        self.check_ref()?;
        Ok(self.0)
    }
}

impl ValidFpGrowthParams {
    pub fn min_support(&self) -> Fraction {
        self.min_support
    }
    pub fn max_len(&self) -> Option<usize> {
        self.max_len
    }
}

/// Frequent itemsets with their counts; items are ids of the baskets' item names.
#[derive(Debug, Clone)]
pub struct FrequentItemsets {
    /// The baskets' item names and ids.
    catalog: Items,
    baskets: u64,
    min_count: u64,
    /// Item ids of every itemset, ascending within a set, one after the other.
    items: Vec<u32>,
    /// Where each itemset starts in `items`, and one past the end.
    offsets: Vec<usize>,
    counts: Vec<u32>,
}

impl FrequentItemsets {
    /// How many itemsets.
    pub fn len(&self) -> usize {
        self.counts.len()
    }
    pub fn is_empty(&self) -> bool {
        self.counts.is_empty()
    }
    /// The item ids of itemset `i`, ascending.
    pub fn itemset(&self, i: usize) -> &[u32] {
        &self.items[self.offsets[i]..self.offsets[i + 1]]
    }
    /// Baskets holding every item of itemset `i`.
    pub fn count(&self, i: usize) -> u32 {
        self.counts[i]
    }
    /// The id of an item name.
    pub fn id(&self, name: &str) -> Option<u32> {
        self.catalog.id(name)
    }
    /// The name of an item id.
    pub fn name(&self, id: u32) -> &str {
        self.catalog.name(id)
    }
    /// Baskets mined.
    pub fn baskets(&self) -> u64 {
        self.baskets
    }
    /// The count an itemset needed: `ceil(min_support × baskets)`.
    pub fn min_count(&self) -> u64 {
        self.min_count
    }
    /// The items of itemset `i` as names, sorted by name.
    pub fn names_of(&self, i: usize) -> Vec<&str> {
        self.names_sorted(self.itemset(i))
    }
    /// Names of item ids, sorted by name.
    pub fn names_sorted(&self, ids: &[u32]) -> Vec<&str> {
        let mut v: Vec<&str> = ids.iter().map(|&i| self.name(i)).collect();
        v.sort_unstable();
        v
    }
}

/// A prefix tree over item ranks. Node 0 is the root.
struct Tree {
    item: Vec<u32>,
    count: Vec<u32>,
    parent: Vec<u32>,
    /// The ranks present, ascending, and for each its nodes in preorder.
    ranks: Vec<u32>,
    heads: Vec<Vec<u32>>,
}

impl Tree {
    /// Builds a tree from weighted paths (ranks ascending within a path), sharing each
    /// path's common prefix with the path before. `ranks` are the ranks that occur, ascending;
    /// `slot[rank]` must hold each one's index in `ranks`.
    fn build<'p>(
        paths: impl Iterator<Item = (&'p [u32], u32)>,
        ranks: Vec<u32>,
        slot: &[u32],
        size_hint: usize,
    ) -> Tree {
        let mut t = Tree {
            item: Vec::with_capacity(size_hint + 1),
            count: Vec::with_capacity(size_hint + 1),
            parent: Vec::with_capacity(size_hint + 1),
            heads: vec![Vec::new(); ranks.len()],
            ranks,
        };
        t.item.push(u32::MAX);
        t.count.push(0);
        t.parent.push(0);
        let mut stack: Vec<u32> = Vec::new();
        let mut prev: &[u32] = &[];
        for (path, w) in paths {
            let common = prev.iter().zip(path).take_while(|(a, b)| a == b).count();
            stack.truncate(common);
            for &n in &stack {
                t.count[n as usize] += w;
            }
            let mut parent = stack.last().copied().unwrap_or(0);
            for &r in &path[common..] {
                let node = t.item.len() as u32;
                t.item.push(r);
                t.count.push(w);
                t.parent.push(parent);
                t.heads[slot[r as usize] as usize].push(node);
                stack.push(node);
                parent = node;
            }
            prev = path;
        }
        t
    }
}

/// Per-thread scratch space, indexed by rank.
struct Scratch {
    count: Vec<u32>,
    slot: Vec<u32>,
    touched: Vec<u32>,
    path: Vec<u32>,
    flat: Vec<u32>,
    ends: Vec<(usize, u32)>,
}

impl Scratch {
    fn new(n: usize) -> Scratch {
        Scratch {
            count: vec![0; n],
            slot: vec![u32::MAX; n],
            touched: Vec::new(),
            path: Vec::new(),
            flat: Vec::new(),
            ends: Vec::new(),
        }
    }
}

/// Itemsets found by one task: ranks flat, with ends and counts.
#[derive(Default)]
struct Found {
    ranks: Vec<u32>,
    ends: Vec<usize>,
    counts: Vec<u32>,
}

impl Found {
    /// Appends the itemsets to `out`, from ranks back to item ids, ascending within each set.
    fn into_items(self, frequent: &[u32], out: &mut FrequentItemsets) {
        let mut start = 0;
        for (&end, &count) in self.ends.iter().zip(&self.counts) {
            let at = out.items.len();
            out.items
                .extend(self.ranks[start..end].iter().map(|&r| frequent[r as usize]));
            out.items[at..].sort_unstable();
            out.offsets.push(out.items.len());
            out.counts.push(count);
            start = end;
        }
    }
}

struct Miner<'a> {
    min_count: u32,
    max_len: usize,
    cap: usize,
    total: &'a AtomicUsize,
    over: &'a AtomicBool,
}

impl Miner<'_> {
    fn emit(&self, found: &mut Found, prefix: &[u32], count: u32) {
        found.ranks.extend_from_slice(prefix);
        found.ends.push(found.ranks.len());
        found.counts.push(count);
        if self.total.fetch_add(1, Ordering::Relaxed) + 1 > self.cap {
            self.over.store(true, Ordering::Relaxed);
        }
    }

    /// Mines the itemsets ending in the item at `at` of `tree`, then recursively those that
    /// extend them.
    fn grow(
        &self,
        tree: &Tree,
        at: usize,
        prefix: &mut Vec<u32>,
        s: &mut Scratch,
        found: &mut Found,
    ) {
        if self.over.load(Ordering::Relaxed) {
            return;
        }
        let rank = tree.ranks[at];
        let nodes = &tree.heads[at];
        let support: u32 = nodes.iter().map(|&n| tree.count[n as usize]).sum();
        prefix.push(rank);
        self.emit(found, prefix, support);
        if prefix.len() < self.max_len
            && let Some(cond) = self.conditional(tree, nodes, s)
        {
            for i in (0..cond.ranks.len()).rev() {
                self.grow(&cond, i, prefix, s, found);
            }
        }
        prefix.pop();
    }

    /// The conditional tree of an item's nodes: their paths restricted to the items frequent
    /// among them; None when no item is.
    fn conditional(&self, tree: &Tree, nodes: &[u32], s: &mut Scratch) -> Option<Tree> {
        s.touched.clear();
        for &n in nodes {
            let w = tree.count[n as usize];
            let mut p = tree.parent[n as usize];
            while p != 0 {
                let r = tree.item[p as usize];
                if s.count[r as usize] == 0 {
                    s.touched.push(r);
                }
                s.count[r as usize] += w;
                p = tree.parent[p as usize];
            }
        }
        let mut ranks: Vec<u32> = s
            .touched
            .iter()
            .copied()
            .filter(|&r| s.count[r as usize] >= self.min_count)
            .collect();
        for &r in &s.touched {
            s.count[r as usize] = 0;
        }
        if ranks.is_empty() {
            return None;
        }
        ranks.sort_unstable();
        for (i, &r) in ranks.iter().enumerate() {
            s.slot[r as usize] = i as u32;
        }
        // The filtered paths, flat; nodes in preorder give them nearly sorted.
        s.flat.clear();
        s.ends.clear();
        for &n in nodes {
            s.path.clear();
            let mut p = tree.parent[n as usize];
            while p != 0 {
                let r = tree.item[p as usize];
                if s.slot[r as usize] != u32::MAX {
                    s.path.push(r);
                }
                p = tree.parent[p as usize];
            }
            if !s.path.is_empty() {
                s.flat.extend(s.path.iter().rev());
                s.ends.push((s.flat.len(), tree.count[n as usize]));
            }
        }
        let mut start = 0;
        let paths = s.ends.iter().map(|&(end, w)| {
            let p = &s.flat[start..end];
            start = end;
            (p, w)
        });
        let cond = Tree::build(paths, ranks, &s.slot, s.flat.len());
        for &r in &cond.ranks {
            s.slot[r as usize] = u32::MAX;
        }
        Some(cond)
    }
}

/// The items in at least `min` baskets by descending count (ties by id, so runs are
/// repeatable), and each item id's rank among them (`u32::MAX`: not frequent).
fn frequent_items(b: &Baskets, min: u32) -> (Vec<u32>, Vec<u32>) {
    let n_names = b.names().len();
    let mut counts = vec![0u32; n_names];
    for &i in b.ids() {
        counts[i as usize] += 1;
    }
    let mut frequent: Vec<u32> = (0..n_names as u32)
        .filter(|&i| counts[i as usize] >= min)
        .collect();
    frequent.sort_unstable_by_key(|&i| (std::cmp::Reverse(counts[i as usize]), i));
    let mut rank_of = vec![u32::MAX; n_names];
    for (r, &i) in frequent.iter().enumerate() {
        rank_of[i as usize] = r as u32;
    }
    (frequent, rank_of)
}

/// The FP-tree of the baskets as ascending ranks of their frequent items, inserted in
/// sorted order (shared prefixes then arrive together).
fn ranked_tree(b: &Baskets, rank_of: &[u32], n_frequent: usize) -> Tree {
    let mut flat: Vec<u32> = Vec::with_capacity(b.ids().len());
    let mut ends: Vec<usize> = Vec::with_capacity(b.len());
    for k in 0..b.len() {
        let start = flat.len();
        flat.extend(
            b.basket(k)
                .iter()
                .map(|&i| rank_of[i as usize])
                .filter(|&r| r != u32::MAX),
        );
        if flat.len() > start {
            flat[start..].sort_unstable();
            ends.push(flat.len());
        }
    }
    let span = |k: usize| {
        let start = if k == 0 { 0 } else { ends[k - 1] };
        &flat[start..ends[k]]
    };
    let mut order: Vec<usize> = (0..ends.len()).collect();
    order.par_sort_unstable_by(|&x, &y| span(x).cmp(span(y)));
    let ranks: Vec<u32> = (0..n_frequent as u32).collect();
    Tree::build(
        order.iter().map(|&k| (span(k), 1)),
        ranks.clone(),
        &ranks,
        flat.len(),
    )
}

impl Fit<Baskets, (), Error> for ValidFpGrowthParams {
    type Object = FrequentItemsets;

    fn fit(&self, data: &DatasetBase<Baskets, ()>) -> Result<FrequentItemsets> {
        let b = &data.records;
        let n = b.len() as u64;
        let min_count = self.min_support.ceil_mul(n).max(1);
        let empty = |min_count| FrequentItemsets {
            catalog: b.items().clone(),
            baskets: n,
            min_count,
            items: Vec::new(),
            offsets: vec![0],
            counts: Vec::new(),
        };
        if min_count > u64::from(u32::MAX) || min_count > n {
            return Ok(empty(min_count));
        }
        let min = min_count as u32;

        let (frequent, rank_of) = frequent_items(b, min);
        let tree = ranked_tree(b, &rank_of, frequent.len());

        let total = AtomicUsize::new(0);
        let over = AtomicBool::new(false);
        let miner = Miner {
            min_count: min,
            max_len: self.max_len.unwrap_or(usize::MAX),
            cap: self.max_itemsets,
            total: &total,
            over: &over,
        };
        // Least frequent items first: their trees are the small ones, and the big ones
        // then run while the small ones finish.
        let parts: Vec<Found> = (0..tree.ranks.len())
            .rev()
            .collect::<Vec<_>>()
            .into_par_iter()
            .map_init(
                || Scratch::new(frequent.len()),
                |s, at| {
                    let mut found = Found::default();
                    miner.grow(&tree, at, &mut Vec::new(), s, &mut found);
                    found
                },
            )
            .collect();
        if over.load(Ordering::Relaxed) {
            return Err(Error::Mining {
                algorithm: "FP-growth",
                message: format!(
                    "more than {} frequent itemsets at min support {} ({min_count} of {n} \
                     baskets); raise --min-support or set --max-len",
                    self.max_itemsets, self.min_support
                ),
            });
        }

        let mut out = empty(min_count);
        for part in parts {
            part.into_items(&frequent, &mut out);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// Every itemset of every basket, counted: the definition, for small inputs.
    fn brute_force(
        baskets: &[Vec<&str>],
        min_count: u32,
        max_len: usize,
    ) -> BTreeMap<Vec<String>, u32> {
        let mut all: BTreeMap<Vec<String>, u32> = BTreeMap::new();
        for b in baskets {
            let mut items: Vec<&str> = b.clone();
            items.sort_unstable();
            items.dedup();
            for mask in 1u32..(1 << items.len()) {
                if mask.count_ones() as usize > max_len {
                    continue;
                }
                let set: Vec<String> = (0..items.len())
                    .filter(|i| mask & (1 << i) != 0)
                    .map(|i| items[i].to_string())
                    .collect();
                *all.entry(set).or_insert(0) += 1;
            }
        }
        all.retain(|_, c| *c >= min_count);
        all
    }

    fn mined(
        baskets: &[Vec<&str>],
        support: Fraction,
        max_len: Option<usize>,
    ) -> BTreeMap<Vec<String>, u32> {
        let mut b = Baskets::default();
        for basket in baskets {
            b.push(basket.iter().copied());
        }
        let f = FpGrowthParams::new(support)
            .max_len(max_len)
            .check()
            .unwrap()
            .fit(&DatasetBase::new(b, ()))
            .unwrap();
        (0..f.len())
            .map(|i| {
                (
                    f.names_of(i).iter().map(|s| s.to_string()).collect(),
                    f.count(i),
                )
            })
            .collect()
    }

    #[test]
    fn the_papers_example() {
        // Han, Pei & Yin 2000, table 1, with minimum support 3 of 5.
        let db = [
            vec!["f", "a", "c", "d", "g", "i", "m", "p"],
            vec!["a", "b", "c", "f", "l", "m", "o"],
            vec!["b", "f", "h", "j", "o"],
            vec!["b", "c", "k", "s", "p"],
            vec!["a", "f", "c", "e", "l", "p", "m", "n"],
        ];
        let got = mined(&db, "3/5".parse().unwrap(), None);
        assert_eq!(got, brute_force(&db, 3, usize::MAX));
        // The paper's m-conditional result: {fcam}, count 3.
        let key: Vec<String> = ["a", "c", "f", "m"].iter().map(|s| s.to_string()).collect();
        assert_eq!(got[&key], 3);
        assert_eq!(got.len(), 18);
    }

    const ITEMS: [&str; 10] = ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j"];

    proptest::proptest! {
        #![proptest_config(proptest::test_runner::Config::with_cases(300))]

        /// FP-growth finds exactly the itemsets a brute-force count finds, with their counts.
        #[test]
        fn equals_brute_force_on_random_baskets(
            // Pairs of draws, the smaller kept: low letters are common, as in real baskets.
            db in proptest::collection::vec(
                proptest::collection::vec((0..ITEMS.len(), 0..ITEMS.len()), 1..8),
                1..40,
            ),
            num in 1..=10u64,
            max_len in proptest::option::of(1..4usize),
        ) {
            let db: Vec<Vec<&str>> = db
                .iter()
                .map(|b| b.iter().map(|&(x, y)| ITEMS[x.min(y)]).collect())
                .collect();
            let support = Fraction { num, den: 20 };
            let min_count = support.ceil_mul(db.len() as u64) as u32;
            proptest::prop_assert_eq!(
                mined(&db, support, max_len),
                brute_force(&db, min_count, max_len.unwrap_or(usize::MAX))
            );
        }
    }

    #[test]
    fn the_itemset_cap_stops_with_advice() {
        let db: Vec<Vec<&str>> = vec![vec!["a", "b", "c", "d", "e", "f"]; 3];
        let mut b = Baskets::default();
        for basket in &db {
            b.push(basket.iter().copied());
        }
        let err = FpGrowthParams::new("1/2".parse().unwrap())
            .max_itemsets(10)
            .check()
            .unwrap()
            .fit(&DatasetBase::new(b, ()))
            .unwrap_err();
        assert!(
            err.to_string().contains("more than 10 frequent itemsets"),
            "{err}"
        );
    }
}
