//! An index over many compiled patterns, so a lookup never scans them all.
//!
//! Patterns are grouped by domain and action (a short list of pairs, `*` included). Inside one
//! domain/action pair, exact targets sit in a hash map, globs sit in a radix tree keyed by their
//! literal prefix (so only globs whose prefix is a prefix of the target are tried), and group
//! targets sit in a short list resolved by the caller. The cost of a lookup depends on the length of
//! the target and on how many patterns actually match, not on how many patterns exist.

use std::collections::HashMap;
use std::ops::ControlFlow;

use crate::pattern::{Glob, Pattern, Segment, TargetPattern};

type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// Patterns indexed for lookup; each carries a caller-chosen `u32` id.
#[derive(Clone, Debug, Default)]
pub struct PatternIndex {
    /// One entry per distinct domain/action pair (`*` included). Configurations have a handful
    /// (tools, resources, prompts, system, times their actions), and comparing a few short strings
    /// beats hashing the request's domain and action.
    pairs: Vec<(Segment, Segment, TargetIndex)>,
    len: usize,
}

impl PatternIndex {
    /// An empty index.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a pattern under `id`; its tag is the id itself.
    pub fn insert(&mut self, pattern: &Pattern, id: u32) {
        self.insert_tagged(pattern, id, id);
    }

    /// Adds a pattern under `id` with a `tag` that `keep` is asked about (say, the role that
    /// owns the pattern), so filtering needs no lookup on the caller's side.
    pub fn insert_tagged(&mut self, pattern: &Pattern, id: u32, tag: u32) {
        let (domain, action) = (pattern.domain(), pattern.action());
        let at = match self
            .pairs
            .iter()
            .position(|(d, a, _)| d == domain && a == action)
        {
            Some(i) => i,
            None => {
                self.pairs
                    .push((domain.clone(), action.clone(), TargetIndex::default()));
                self.pairs.len() - 1
            }
        };
        self.pairs[at].2.insert(pattern.target(), id, tag);
        self.len += 1;
    }

    /// How many patterns were inserted.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing was inserted.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Calls `found` with the id of every pattern matching `domain:action:target`, until it breaks.
    ///
    /// `keep(tag)` is asked first, so patterns the caller does not care about (a role the
    /// principal does not hold) skip the costlier glob and group checks. `in_group(domain, group,
    /// target)` decides group targets.
    pub fn for_each_match<K, G, F>(
        &self,
        domain: &str,
        action: &str,
        target: &str,
        keep: &mut K,
        in_group: &mut G,
        found: &mut F,
    ) -> ControlFlow<()>
    where
        K: FnMut(u32) -> bool,
        G: FnMut(&str, &str, &str) -> bool,
        F: FnMut(u32) -> ControlFlow<()>,
    {
        for (d, a, t) in &self.pairs {
            if d.matches(domain) && a.matches(action) {
                t.for_each_match(domain, target, keep, in_group, found)?;
            }
        }
        ControlFlow::Continue(())
    }
}

/// The patterns of one domain/action pair, by target.
#[derive(Clone, Debug, Default)]
struct TargetIndex {
    exact: FastMap<Box<str>, Vec<(u32, u32)>>,
    globs: PrefixTree<GlobBucket>,
    groups: Vec<(Box<str>, u32, u32)>,
}

/// The globs sharing one literal prefix. Tags sit apart from the tails so that the caller's `keep`
/// filter scans a dense array and touches a tail only for the globs it keeps.
#[derive(Clone, Debug, Default)]
struct GlobBucket {
    tags: Vec<u32>,
    ids: Vec<u32>,
    tails: Vec<GlobTail>,
}

#[derive(Clone, Debug)]
enum GlobTail {
    /// The glob is `prefix*`: any rest matches.
    Any,
    /// The rest must match the glob after its prefix.
    Rest(Glob),
}

impl TargetIndex {
    fn insert(&mut self, target: &TargetPattern, id: u32, tag: u32) {
        match target {
            TargetPattern::Exact(t) => self.exact.entry(t.clone()).or_default().push((id, tag)),
            TargetPattern::Glob(g) => {
                let tail = if g.is_prefix_only() {
                    GlobTail::Any
                } else {
                    GlobTail::Rest(g.clone())
                };
                let bucket = self.globs.entry(g.prefix().as_bytes());
                bucket.tags.push(tag);
                bucket.ids.push(id);
                bucket.tails.push(tail);
            }
            TargetPattern::Group(name) => self.groups.push((name.clone(), id, tag)),
        }
    }

    fn for_each_match<K, G, F>(
        &self,
        domain: &str,
        target: &str,
        keep: &mut K,
        in_group: &mut G,
        found: &mut F,
    ) -> ControlFlow<()>
    where
        K: FnMut(u32) -> bool,
        G: FnMut(&str, &str, &str) -> bool,
        F: FnMut(u32) -> ControlFlow<()>,
    {
        if let Some(entries) = self.exact.get(target) {
            for (id, tag) in entries {
                if keep(*tag) {
                    found(*id)?;
                }
            }
        }
        self.globs
            .for_each_prefix(target.as_bytes(), &mut |entries, at| {
                // `at` ends a literal prefix taken from valid UTF-8 text, so it is a char boundary.
                let rest = target.get(at..).unwrap_or_default();
                for (i, tag) in entries.tags.iter().enumerate() {
                    if !keep(*tag) {
                        continue;
                    }
                    // INVARIANT: `tags`, `ids` and `tails` are pushed together, so `i` is in range.
                    let (id, tail) = (&entries.ids[i], &entries.tails[i]);
                    let hit = match tail {
                        GlobTail::Any => true,
                        GlobTail::Rest(glob) => glob.matches_after_prefix(rest),
                    };
                    if hit {
                        found(*id)?;
                    }
                }
                ControlFlow::Continue(())
            })?;
        for (group, id, tag) in &self.groups {
            if keep(*tag) && in_group(domain, group, target) {
                found(*id)?;
            }
        }
        ControlFlow::Continue(())
    }
}

/// A radix tree from byte strings to values, answering "which keys are prefixes of this text".
#[derive(Clone, Debug)]
pub(crate) struct PrefixTree<V> {
    nodes: Vec<Node<V>>,
}

#[derive(Clone, Debug)]
struct Node<V> {
    label: Box<[u8]>,
    children: Vec<(u8, u32)>,
    value: Option<V>,
}

impl<V> Default for PrefixTree<V> {
    fn default() -> Self {
        PrefixTree {
            nodes: vec![Node {
                label: Box::default(),
                children: Vec::new(),
                value: None,
            }],
        }
    }
}

impl<V: Default> PrefixTree<V> {
    /// The value stored under `key`, created empty if absent.
    pub(crate) fn entry(&mut self, key: &[u8]) -> &mut V {
        let mut node = 0usize;
        let mut pos = 0usize;
        loop {
            if pos == key.len() {
                return self.nodes[node].value.get_or_insert_with(V::default);
            }
            let byte = key[pos];
            let slot = self.nodes[node]
                .children
                .binary_search_by_key(&byte, |c| c.0);
            match slot {
                Err(insert_at) => {
                    let leaf = self.push(Node {
                        label: key[pos..].into(),
                        children: Vec::new(),
                        value: Some(V::default()),
                    });
                    self.nodes[node].children.insert(insert_at, (byte, leaf));
                    return self.nodes[leaf as usize]
                        .value
                        .get_or_insert_with(V::default);
                }
                Ok(i) => {
                    let child = self.nodes[node].children[i].1 as usize;
                    let label = &self.nodes[child].label;
                    let common = label
                        .iter()
                        .zip(&key[pos..])
                        .take_while(|(a, b)| a == b)
                        .count();
                    if common < label.len() {
                        // Split the edge: a new node holds the shared part.
                        let shared: Box<[u8]> = label[..common].into();
                        let rest: Box<[u8]> = label[common..].into();
                        let rest_first = rest[0];
                        self.nodes[child].label = rest;
                        let mid = self.push(Node {
                            label: shared,
                            children: vec![(rest_first, child as u32)],
                            value: None,
                        });
                        self.nodes[node].children[i].1 = mid;
                        node = mid as usize;
                    } else {
                        node = child;
                    }
                    pos += common;
                }
            }
        }
    }

    fn push(&mut self, node: Node<V>) -> u32 {
        self.nodes.push(node);
        // Patterns come from configuration; far fewer than 2^32 nodes exist.
        u32::try_from(self.nodes.len() - 1).unwrap_or(u32::MAX)
    }
}

impl<V> PrefixTree<V> {
    /// Calls `f(value, key_len)` for each stored key that is a prefix of `text`, shortest first.
    pub(crate) fn for_each_prefix<F>(&self, text: &[u8], f: &mut F) -> ControlFlow<()>
    where
        F: FnMut(&V, usize) -> ControlFlow<()>,
    {
        let mut node = 0usize;
        let mut pos = 0usize;
        loop {
            let n = &self.nodes[node];
            if let Some(v) = &n.value {
                f(v, pos)?;
            }
            let Some(&byte) = text.get(pos) else {
                return ControlFlow::Continue(());
            };
            let Ok(i) = n.children.binary_search_by_key(&byte, |c| c.0) else {
                return ControlFlow::Continue(());
            };
            let child = n.children[i].1 as usize;
            let label = &self.nodes[child].label;
            if !text[pos..].starts_with(label) {
                return ControlFlow::Continue(());
            }
            pos += label.len();
            node = child;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn all_matches(index: &PatternIndex, d: &str, a: &str, t: &str) -> Vec<u32> {
        matches_kept(index, d, a, t, |_| true)
    }

    fn matches_kept(
        index: &PatternIndex,
        d: &str,
        a: &str,
        t: &str,
        mut keep: impl FnMut(u32) -> bool,
    ) -> Vec<u32> {
        let mut out = Vec::new();
        let _ = index.for_each_match(
            d,
            a,
            t,
            &mut keep,
            &mut |_, g, t| g == "g" && t == "grouped",
            &mut |id| {
                out.push(id);
                ControlFlow::Continue(())
            },
        );
        out.sort_unstable();
        out
    }

    #[test]
    fn prefix_tree_finds_every_prefix() {
        let mut tree: PrefixTree<Vec<u32>> = PrefixTree::default();
        for (i, k) in ["", "a", "ab", "abc", "abd", "b", "abcdef"]
            .iter()
            .enumerate()
        {
            tree.entry(k.as_bytes()).push(i as u32);
        }
        let mut seen = Vec::new();
        let _ = tree.for_each_prefix(b"abcde", &mut |v, at| {
            seen.push((v.clone(), at));
            ControlFlow::Continue(())
        });
        assert_eq!(
            seen,
            vec![(vec![0], 0), (vec![1], 1), (vec![2], 2), (vec![3], 3)]
        );
    }

    #[test]
    fn index_kinds() {
        let mut index = PatternIndex::new();
        let pats = [
            "tools:execute:echo",
            "tools:execute:ec*",
            "tools:*:*",
            "*:execute:*o",
            "tools:execute:@g",
            "resources:read:file:///a.txt",
        ];
        for (i, p) in pats.iter().enumerate() {
            index.insert(&Pattern::parse(p).unwrap(), i as u32);
        }
        assert_eq!(
            all_matches(&index, "tools", "execute", "echo"),
            vec![0, 1, 2, 3]
        );
        assert_eq!(all_matches(&index, "tools", "list", "echo"), vec![2]);
        assert_eq!(all_matches(&index, "prompts", "execute", "hello"), vec![3]);
        assert_eq!(
            all_matches(&index, "tools", "execute", "grouped"),
            vec![2, 4]
        );
        assert_eq!(
            all_matches(&index, "resources", "read", "file:///aXtxt"),
            Vec::<u32>::new()
        );
        assert_eq!(
            all_matches(&index, "resources", "read", "file:///a.txt"),
            vec![5]
        );
    }

    fn target_strategy() -> impl Strategy<Value = String> {
        proptest::string::string_regex("[ab:/.*]{0,6}").unwrap()
    }

    proptest! {
        /// The index answers exactly what a linear scan of the plain matcher answers.
        #[test]
        fn index_agrees_with_linear_scan(
            pats in proptest::collection::vec(
                (prop_oneof![Just("tools"), Just("*"), Just("prompts")],
                 prop_oneof![Just("execute"), Just("*"), Just("read")],
                 target_strategy().prop_filter("non-empty", |t| !t.is_empty())),
                0..24),
            queries in proptest::collection::vec(
                (prop_oneof![Just("tools"), Just("prompts")],
                 prop_oneof![Just("execute"), Just("read")],
                 proptest::string::string_regex("[ab:/.]{0,6}").unwrap()),
                1..16),
        ) {
            let compiled: Vec<Pattern> = pats
                .iter()
                .map(|(d, a, t)| Pattern::parse(&format!("{d}:{a}:{t}")).unwrap())
                .collect();
            let mut index = PatternIndex::new();
            for (i, p) in compiled.iter().enumerate() {
                index.insert(p, i as u32);
            }
            for (d, a, t) in &queries {
                let expected: Vec<u32> = compiled
                    .iter()
                    .enumerate()
                    .filter(|(_, p)| p.matches_ungrouped(d, a, t))
                    .map(|(i, _)| i as u32)
                    .collect();
                prop_assert_eq!(all_matches(&index, d, a, t), expected.clone());
                // `keep` filters every kind of entry, exact, glob and group alike.
                let even: Vec<u32> = expected.into_iter().filter(|i| i % 2 == 0).collect();
                prop_assert_eq!(matches_kept(&index, d, a, t, |i| i % 2 == 0), even);
            }
        }
    }
}
