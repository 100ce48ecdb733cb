//! The large form of a sorted set: a treap with subtree sizes over an arena of nodes, and an
//! index from member to node (see the parent module's docs).

use std::cmp::Ordering;
use std::hash::BuildHasher;

use hashbrown::{DefaultHashBuilder, HashTable};

use super::order;
use crate::memory::alloc_size;

/// What a member costs in the large form beyond its bytes: its node (40 bytes) and its slot in
/// the index with its control byte at 7/8 load.
pub(super) const NODE_OVERHEAD: usize = 40 + (4 + 1) * 8 / 7;
const NIL: u32 = u32::MAX;

/// One member of the large form.
#[derive(Clone)]
pub(super) struct Node {
    pub(super) member: Box<[u8]>,
    pub(super) score: f64,
    left: u32,
    right: u32,
    /// Nodes in this subtree, this one included.
    size: u32,
    priority: u32,
}

/// The large form: a treap with subtree sizes over an arena of nodes (kept dense: a removed
/// node's slot takes the last node), and an index from member to node.
#[derive(Clone)]
pub(super) struct Tree {
    pub(super) nodes: Vec<Node>,
    root: u32,
    index: HashTable<u32>,
    hasher: DefaultHashBuilder,
    pub(super) mem: usize,
}

impl Default for Tree {
    fn default() -> Self {
        Self {
            nodes: Vec::new(),
            root: NIL,
            index: HashTable::new(),
            hasher: DefaultHashBuilder::default(),
            mem: 0,
        }
    }
}

impl Tree {
    fn node(&self, i: u32) -> &Node {
        &self.nodes[i as usize]
    }

    fn size(&self, i: u32) -> usize {
        if i == NIL {
            0
        } else {
            self.node(i).size as usize
        }
    }

    fn fix(&mut self, i: u32) {
        let (l, r) = (self.node(i).left, self.node(i).right);
        let size = 1 + self.size(l) + self.size(r);
        self.nodes[i as usize].size = size as u32;
    }

    /// Whether node `a` comes before node `b`.
    fn less(&self, a: u32, b: u32) -> bool {
        let (a, b) = (self.node(a), self.node(b));
        order((a.score, &a.member), (b.score, &b.member)) == Ordering::Less
    }

    pub(super) fn find(&self, member: &[u8]) -> Option<u32> {
        let nodes = &self.nodes;
        self.index
            .find(self.hasher.hash_one(member), |&i| {
                *nodes[i as usize].member == *member
            })
            .copied()
    }

    /// Splits the subtree at `t` into the nodes before node `k` and the others.
    fn split(&mut self, t: u32, k: u32) -> (u32, u32) {
        if t == NIL {
            return (NIL, NIL);
        }
        if self.less(t, k) {
            let (l, r) = self.split(self.node(t).right, k);
            self.nodes[t as usize].right = l;
            self.fix(t);
            (t, r)
        } else {
            let (l, r) = self.split(self.node(t).left, k);
            self.nodes[t as usize].left = r;
            self.fix(t);
            (l, t)
        }
    }

    /// Joins two subtrees, every node of `a` before every node of `b`.
    fn merge(&mut self, a: u32, b: u32) -> u32 {
        if a == NIL {
            return b;
        }
        if b == NIL {
            return a;
        }
        if self.node(a).priority > self.node(b).priority {
            let right = self.merge(self.node(a).right, b);
            self.nodes[a as usize].right = right;
            self.fix(a);
            a
        } else {
            let left = self.merge(a, self.node(b).left);
            self.nodes[b as usize].left = left;
            self.fix(b);
            b
        }
    }

    /// Puts the detached node `k` into the subtree at `t`; returns the subtree's new root.
    fn attach(&mut self, t: u32, k: u32) -> u32 {
        if t == NIL {
            return k;
        }
        if self.node(k).priority > self.node(t).priority {
            let (l, r) = self.split(t, k);
            let n = &mut self.nodes[k as usize];
            (n.left, n.right) = (l, r);
            self.fix(k);
            return k;
        }
        if self.less(k, t) {
            let left = self.attach(self.node(t).left, k);
            self.nodes[t as usize].left = left;
        } else {
            let right = self.attach(self.node(t).right, k);
            self.nodes[t as usize].right = right;
        }
        self.fix(t);
        t
    }

    /// Takes node `k` out of the subtree at `t`; returns the subtree's new root.
    fn detach(&mut self, t: u32, k: u32) -> u32 {
        if t == k {
            let (l, r) = (self.node(k).left, self.node(k).right);
            let n = &mut self.nodes[k as usize];
            (n.left, n.right, n.size) = (NIL, NIL, 1);
            return self.merge(l, r);
        }
        if self.less(k, t) {
            let left = self.detach(self.node(t).left, k);
            self.nodes[t as usize].left = left;
        } else {
            let right = self.detach(self.node(t).right, k);
            self.nodes[t as usize].right = right;
        }
        self.fix(t);
        t
    }

    pub(super) fn insert(&mut self, member: &[u8], score: f64) -> bool {
        if let Some(k) = self.find(member) {
            if self.node(k).score.to_bits() != score.to_bits() {
                self.root = self.detach(self.root, k);
                self.nodes[k as usize].score = score;
                self.root = self.attach(self.root, k);
            }
            return false;
        }
        let hash = self.hasher.hash_one(member);
        let k = u32::try_from(self.nodes.len()).expect("fewer than 2^32 members");
        self.nodes.push(Node {
            member: member.into(),
            score,
            left: NIL,
            right: NIL,
            size: 1,
            priority: (hash >> 32) as u32,
        });
        let (nodes, hasher) = (&self.nodes, &self.hasher);
        self.index
            .insert_unique(hash, k, |&i| hasher.hash_one(&*nodes[i as usize].member));
        self.root = self.attach(self.root, k);
        self.mem += alloc_size(member.len()) + NODE_OVERHEAD;
        true
    }

    pub(super) fn remove(&mut self, member: &[u8]) -> bool {
        let Some(k) = self.find(member) else {
            return false;
        };
        self.root = self.detach(self.root, k);
        let hash = self.hasher.hash_one(member);
        if let Ok(entry) = self.index.find_entry(hash, |&i| i == k) {
            entry.remove();
        }
        self.mem -= alloc_size(member.len()) + NODE_OVERHEAD;
        let last = (self.nodes.len() - 1) as u32;
        if k != last {
            // The last node moves into k's slot: repoint its parent and its index entry.
            let mut parent = NIL;
            let mut t = self.root;
            while t != last {
                parent = t;
                t = if self.less(last, t) {
                    self.node(t).left
                } else {
                    self.node(t).right
                };
            }
            let moved = self.hasher.hash_one(&*self.node(last).member);
            if let Some(slot) = self.index.find_mut(moved, |&i| i == last) {
                *slot = k;
            }
            if parent == NIL {
                self.root = k;
            } else if self.node(parent).left == last {
                self.nodes[parent as usize].left = k;
            } else {
                self.nodes[parent as usize].right = k;
            }
        }
        self.nodes.swap_remove(k as usize);
        if self.nodes.capacity() > 4 * self.nodes.len() + 16 {
            self.nodes.shrink_to(2 * self.nodes.len());
        }
        true
    }

    pub(super) fn rank(&self, k: u32) -> usize {
        let mut rank = 0;
        let mut t = self.root;
        while t != k {
            if self.less(k, t) {
                t = self.node(t).left;
            } else {
                rank += self.size(self.node(t).left) + 1;
                t = self.node(t).right;
            }
        }
        rank + self.size(self.node(k).left)
    }

    pub(super) fn partition_point(&self, mut before: impl FnMut(&[u8], f64) -> bool) -> usize {
        let mut count = 0;
        let mut t = self.root;
        while t != NIL {
            let n = self.node(t);
            if before(&n.member, n.score) {
                count += self.size(n.left) + 1;
                t = n.right;
            } else {
                t = n.left;
            }
        }
        count
    }

    pub(super) fn range(&self, start: usize, end: usize) -> TreeIter<'_> {
        let mut front = Vec::new();
        let mut back = Vec::new();
        if start < end {
            // The path to `start`, keeping the nodes that come after it (the walk's future).
            let (mut t, mut r) = (self.root, start);
            loop {
                let left = self.size(self.node(t).left);
                match r.cmp(&left) {
                    Ordering::Less => {
                        front.push(t);
                        t = self.node(t).left;
                    }
                    Ordering::Equal => {
                        front.push(t);
                        break;
                    }
                    Ordering::Greater => {
                        r -= left + 1;
                        t = self.node(t).right;
                    }
                }
            }
            // The path to `end - 1`, keeping the nodes that come before it.
            let (mut t, mut r) = (self.root, end - 1);
            loop {
                let left = self.size(self.node(t).left);
                match r.cmp(&left) {
                    Ordering::Greater => {
                        back.push(t);
                        r -= left + 1;
                        t = self.node(t).right;
                    }
                    Ordering::Equal => {
                        back.push(t);
                        break;
                    }
                    Ordering::Less => t = self.node(t).left,
                }
            }
        }
        TreeIter {
            tree: self,
            front,
            back,
            remaining: end - start,
        }
    }
}

#[doc(hidden)]
pub struct TreeIter<'a> {
    tree: &'a Tree,
    front: Vec<u32>,
    back: Vec<u32>,
    remaining: usize,
}

impl<'a> Iterator for TreeIter<'a> {
    type Item = (&'a [u8], f64);

    fn next(&mut self) -> Option<Self::Item> {
        if self.remaining == 0 {
            return None;
        }
        let tree = self.tree;
        let x = self.front.pop().expect("a node while some remain");
        let mut t = tree.node(x).right;
        while t != NIL {
            self.front.push(t);
            t = tree.node(t).left;
        }
        self.remaining -= 1;
        let n = tree.node(x);
        Some((&n.member, n.score))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}

impl DoubleEndedIterator for TreeIter<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        if self.remaining == 0 {
            return None;
        }
        let tree = self.tree;
        let x = self.back.pop().expect("a node while some remain");
        let mut t = tree.node(x).left;
        while t != NIL {
            self.back.push(t);
            t = tree.node(t).right;
        }
        self.remaining -= 1;
        let n = tree.node(x);
        Some((&n.member, n.score))
    }
}

impl ExactSizeIterator for TreeIter<'_> {}
