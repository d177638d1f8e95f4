//! The hierarchy: which learns each level makes for one sample, as a step machine.
//!
//! Node0 learns the sample's chunks (the runner does that); every name node0 sends
//! back enters level 1 here. Level k (1..L-1, chunk size c_k) learns groups of its
//! buffered names and passes each learned name to level k+1; the top level's names
//! are only counted. The machine does no I/O: it hands out [`LearnRequest`]s and the
//! runner reports each resulting name with [`Hierarchy::learned`], which may make more
//! requests due. Nothing carries from one sample to the next.
//!
//! Two flows, matching the reference trainer's two paths (TRAINING.md 3.A and 3.B):
//!
//! - [`Flow::SinglePass`] (path A): after each name enters level 1, levels are scanned
//!   in ascending order and a level holding c_k names learns them; its result enters
//!   the next level before the scan goes on, so one name can cascade to the top. At
//!   most one request is out at a time: a name pushed meanwhile waits its turn. At the
//!   end of the sample ([`Hierarchy::finish`]) levels 1..L-1 in ascending order learn
//!   what is left in their buffer under the [`TailPolicy`]; a forced learn's result
//!   enters the next level before that level's turn.
//! - [`Flow::LevelByLevel`] (path B): nothing is learned until `finish`; then level 1's
//!   names are cut into consecutive c_1 slices and all of them are due at once (they
//!   can run concurrently); once every result is in, level 2 is sliced, and so on.
//!
//! Where katotune deliberately differs from the reference:
//!
//! - Path B sent every slice, and a 1-name slice (which KATO cannot store) sent the
//!   literal `UNKNOWN` upward (TRAINING.md 10.23). Here the tail policy applies to path
//!   B too: by default a 1-name slice is not sent and its name counts as dropped, so
//!   no placeholder symbol ever reaches a higher level's patterns.
//! - An empty name (the server stored nothing) is never passed upward; it is counted
//!   in [`LevelCounts::empty`]. Path A's node0 already skipped empty names; at higher
//!   levels the reference would have passed `""` up, which can only happen with a
//!   chunk size of 1 there, and such a hierarchy is rejected at construction.
//!
//! Metadata placement is the runner's choice: [`LearnRequest::first_at_level`] marks
//! the first request at each level in the sample, where path A puts the sample's
//! metadata.

use super::tokenizer::Symbol;
use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

/// How names travel up the levels within a sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Flow {
    /// Path A: interleaved, a level learns as soon as its buffer is full.
    #[default]
    SinglePass,
    /// Path B: all of level 1 for the sample, then all of level 2, and so on.
    LevelByLevel,
}

/// What happens to a group of names shorter than its level's chunk size at the end of
/// a sample (path A's leftover buffer, path B's last slice).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TailPolicy {
    /// Learn it if it holds 2 or more names; a lone name is dropped (the reference's
    /// path A rule, and path B without its `UNKNOWN` placeholder).
    #[default]
    LearnIfAtLeastTwo,
    /// Learn only full groups; every partial group is dropped.
    DropPartial,
}

impl TailPolicy {
    fn learns(self, group: usize, chunk_size: usize) -> bool {
        group >= chunk_size || (self == TailPolicy::LearnIfAtLeastTwo && group >= 2)
    }
}

/// Identifies one learn request so its result can be matched to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct RequestId(u64);

/// One learn the runner must make: observe `symbols` (one per event) on `level`'s
/// node and learn at the end, then report the name with [`Hierarchy::learned`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LearnRequest {
    /// Matches the result to this request.
    pub id: RequestId,
    /// The node level that learns (1 for node1, ...).
    pub level: usize,
    /// The names to observe, in order.
    pub symbols: Vec<Symbol>,
    /// Whether this is the sample's first learn at this level.
    pub first_at_level: bool,
    /// Whether this is an end-of-sample group shorter than the level's chunk size.
    pub partial: bool,
}

/// What one level did during a sample; index 0 of a counts list is node0.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LevelCounts {
    /// Names that entered this level (for node0: non-empty names the runner pushed).
    pub received: u64,
    /// Learn requests made at this level (always 0 for node0).
    pub requests: u64,
    /// Of those, end-of-sample groups shorter than the chunk size.
    pub partial: u64,
    /// Names that entered this level but were never learned here (lone tails).
    pub dropped: u64,
    /// Learns that came back with an empty name (nothing stored, nothing passed up).
    pub empty: u64,
}

impl LevelCounts {
    /// Adds another sample's counts for the same level to these.
    pub fn add(&mut self, other: &LevelCounts) {
        self.received += other.received;
        self.requests += other.requests;
        self.partial += other.partial;
        self.dropped += other.dropped;
        self.empty += other.empty;
    }
}

/// A hierarchy that cannot be built or a step the runner should not have taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HierarchyError {
    /// A level above node0 with a chunk size that can never store a pattern.
    #[error(
        "chunk size {chunk_size} at node{level} is too small: KATO stores only patterns of 2 \
         or more symbols; set it to 2 or more"
    )]
    ChunkSizeTooSmall {
        /// The level (1 for node1).
        level: usize,
        /// The rejected chunk size.
        chunk_size: usize,
    },
    /// A result for a request that is not outstanding in this sample.
    #[error("no outstanding learn request {id:?} in this sample (answered already, or from another sample)")]
    UnknownRequest {
        /// The unknown id.
        id: RequestId,
    },
    /// A name pushed, or `finish` called, after `finish`.
    #[error("the sample is already finishing; start the next sample before pushing names")]
    SampleFinished,
    /// `next_sample` while learns are still due.
    #[error("the sample is not done yet: report every outstanding learn before moving on")]
    SampleNotDone,
}

#[derive(Debug)]
struct InFlight {
    id: RequestId,
    level: usize,
    answer: Option<Symbol>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Filling,
    Finishing { next_level: usize },
    Done,
}

/// One sample's journey up the levels; reusable for the next sample.
///
/// The runner's loop, with a stand-in for the KATO call:
///
/// ```
/// use std::collections::VecDeque;
/// use katotune::train::hierarchy::{Flow, Hierarchy, TailPolicy};
///
/// let mut h = Hierarchy::new(&[7], Flow::SinglePass, TailPolicy::LearnIfAtLeastTwo)?;
/// let learn = |symbols: &[std::sync::Arc<str>]| format!("Q({})", symbols.join(","));
/// let mut calls = Vec::new();
/// let node0_names = ["P0", "P1", "P2", "P3", "P4"].map(String::from);
/// let mut due = VecDeque::new(); // learns in the order they became due
/// for name in node0_names {
///     due.extend(h.push_name(name)?);
///     while let Some(request) = due.pop_front() {
///         calls.push((request.level, request.first_at_level));
///         due.extend(h.learned(request.id, learn(&request.symbols))?);
///     }
/// }
/// due.extend(h.finish()?);
/// while let Some(request) = due.pop_front() {
///     calls.push((request.level, request.first_at_level));
///     due.extend(h.learned(request.id, learn(&request.symbols))?);
/// }
/// assert!(h.is_done());
/// assert_eq!(calls, [(1, true)]); // node1 learns P0..P4 once, at the end
/// let counts = h.next_sample()?;
/// assert_eq!(counts[1].requests, 1);
/// # Ok::<(), katotune::train::hierarchy::HierarchyError>(())
/// ```
#[derive(Debug)]
pub struct Hierarchy {
    chunk_sizes: Vec<usize>,
    flow: Flow,
    tail: TailPolicy,
    buffers: Vec<Vec<Symbol>>,
    waiting: VecDeque<Symbol>,
    in_flight: Vec<InFlight>,
    phase: Phase,
    first_sent: Vec<bool>,
    next_id: u64,
    counts: Vec<LevelCounts>,
}

impl Hierarchy {
    /// A hierarchy whose levels 1, 2, ... have `chunk_sizes` (node0's size is the
    /// segmenter's business). An empty list means node0 alone.
    pub fn new(
        chunk_sizes: &[usize],
        flow: Flow,
        tail: TailPolicy,
    ) -> Result<Self, HierarchyError> {
        if let Some((i, &chunk_size)) = chunk_sizes.iter().enumerate().find(|(_, &c)| c < 2) {
            return Err(HierarchyError::ChunkSizeTooSmall {
                level: i + 1,
                chunk_size,
            });
        }
        let top = chunk_sizes.len();
        Ok(Hierarchy {
            chunk_sizes: chunk_sizes.to_vec(),
            flow,
            tail,
            buffers: vec![Vec::new(); top],
            waiting: VecDeque::new(),
            in_flight: Vec::new(),
            phase: Phase::Filling,
            first_sent: vec![false; top],
            next_id: 0,
            counts: vec![LevelCounts::default(); top + 1],
        })
    }

    /// Hands over the next name node0 learned, in chunk order; returns the learns now due.
    pub fn push_name(&mut self, name: String) -> Result<Vec<LearnRequest>, HierarchyError> {
        let name = Symbol::from(name);
        if self.phase != Phase::Filling {
            return Err(HierarchyError::SampleFinished);
        }
        if name.is_empty() {
            self.counts[0].empty += 1;
            return Ok(Vec::new());
        }
        self.counts[0].received += 1;
        if self.top() == 0 {
            return Ok(Vec::new());
        }
        match self.flow {
            Flow::SinglePass => {
                self.waiting.push_back(name);
                Ok(self.advance())
            }
            Flow::LevelByLevel => {
                self.enter(1, name);
                Ok(Vec::new())
            }
        }
    }

    /// Reports the name a request produced (`""` if the server stored nothing);
    /// returns the learns now due.
    pub fn learned(
        &mut self,
        id: RequestId,
        name: String,
    ) -> Result<Vec<LearnRequest>, HierarchyError> {
        let name = Symbol::from(name);
        let slot = self
            .in_flight
            .iter_mut()
            .find(|f| f.id == id && f.answer.is_none())
            .ok_or(HierarchyError::UnknownRequest { id })?;
        slot.answer = Some(name);
        if self.in_flight.iter().any(|f| f.answer.is_none()) {
            return Ok(Vec::new());
        }
        let answered = std::mem::take(&mut self.in_flight);
        for f in answered {
            self.accept(f.level, f.answer.unwrap_or_default());
        }
        Ok(self.advance())
    }

    /// Marks the end of the sample's node0 names; returns the learns now due. Keep
    /// reporting results until [`Hierarchy::is_done`].
    pub fn finish(&mut self) -> Result<Vec<LearnRequest>, HierarchyError> {
        if self.phase != Phase::Filling {
            return Err(HierarchyError::SampleFinished);
        }
        self.phase = Phase::Finishing { next_level: 1 };
        Ok(self.advance())
    }

    /// Whether the sample is finished and every learn has been reported.
    pub fn is_done(&self) -> bool {
        self.phase == Phase::Done
    }

    /// The counts so far for this sample; index 0 is node0.
    pub fn counts(&self) -> &[LevelCounts] {
        &self.counts
    }

    /// Ends a done sample: returns its counts and makes the machine ready for the next.
    pub fn next_sample(&mut self) -> Result<Vec<LevelCounts>, HierarchyError> {
        if !self.is_done() {
            return Err(HierarchyError::SampleNotDone);
        }
        Ok(self.abandon_sample())
    }

    /// Ends the sample wherever it stands (for example after a failed call): returns
    /// its counts and forgets its buffers and outstanding requests.
    pub fn abandon_sample(&mut self) -> Vec<LevelCounts> {
        self.buffers.iter_mut().for_each(Vec::clear);
        self.waiting.clear();
        self.in_flight.clear();
        self.phase = Phase::Filling;
        self.first_sent.iter_mut().for_each(|f| *f = false);
        let fresh = vec![LevelCounts::default(); self.counts.len()];
        std::mem::replace(&mut self.counts, fresh)
    }

    fn top(&self) -> usize {
        self.chunk_sizes.len()
    }

    fn enter(&mut self, level: usize, name: Symbol) {
        self.counts[level].received += 1;
        self.buffers[level - 1].push(name);
    }

    fn accept(&mut self, level: usize, name: Symbol) {
        if name.is_empty() {
            self.counts[level].empty += 1;
        } else if level < self.top() {
            self.enter(level + 1, name);
        }
    }

    fn issue(&mut self, level: usize, symbols: Vec<Symbol>) -> LearnRequest {
        let id = RequestId(self.next_id);
        self.next_id += 1;
        let partial = symbols.len() < self.chunk_sizes[level - 1];
        let first_at_level = !std::mem::replace(&mut self.first_sent[level - 1], true);
        self.counts[level].requests += 1;
        self.counts[level].partial += u64::from(partial);
        self.in_flight.push(InFlight {
            id,
            level,
            answer: None,
        });
        LearnRequest {
            id,
            level,
            symbols,
            first_at_level,
            partial,
        }
    }

    fn advance(&mut self) -> Vec<LearnRequest> {
        if !self.in_flight.is_empty() {
            return Vec::new();
        }
        match self.flow {
            Flow::SinglePass => self.advance_single_pass(),
            Flow::LevelByLevel => self.advance_level_by_level(),
        }
    }

    fn advance_single_pass(&mut self) -> Vec<LearnRequest> {
        loop {
            let full =
                (1..=self.top()).find(|&k| self.buffers[k - 1].len() >= self.chunk_sizes[k - 1]);
            if let Some(level) = full {
                let size = self.chunk_sizes[level - 1];
                let symbols: Vec<Symbol> = self.buffers[level - 1].drain(..size).collect();
                return vec![self.issue(level, symbols)];
            }
            match self.waiting.pop_front() {
                Some(name) => self.enter(1, name),
                None => break,
            }
        }
        let Phase::Finishing { next_level } = self.phase else {
            return Vec::new();
        };
        for level in next_level..=self.top() {
            let group = std::mem::take(&mut self.buffers[level - 1]);
            if group.is_empty() {
                continue;
            }
            if self.tail.learns(group.len(), self.chunk_sizes[level - 1]) {
                self.phase = Phase::Finishing {
                    next_level: level + 1,
                };
                return vec![self.issue(level, group)];
            }
            self.counts[level].dropped += group.len() as u64;
        }
        self.phase = Phase::Done;
        Vec::new()
    }

    fn advance_level_by_level(&mut self) -> Vec<LearnRequest> {
        let Phase::Finishing { next_level } = self.phase else {
            return Vec::new();
        };
        for level in next_level..=self.top() {
            let size = self.chunk_sizes[level - 1];
            let names = std::mem::take(&mut self.buffers[level - 1]);
            let mut requests = Vec::new();
            for slice in names.chunks(size) {
                if self.tail.learns(slice.len(), size) {
                    requests.push(self.issue(level, slice.to_vec()));
                } else {
                    self.counts[level].dropped += slice.len() as u64;
                }
            }
            if !requests.is_empty() {
                self.phase = Phase::Finishing {
                    next_level: level + 1,
                };
                return requests;
            }
        }
        self.phase = Phase::Done;
        Vec::new()
    }
}

/// Learns per level for one sample whose node0 learned `node0_chunks` chunks, with
/// levels 1, 2, ... of `chunk_sizes` (TRAINING.md 3.A step 5): index 0 is node0, and
/// n_k = floor(n_(k-1) / c_k), plus 1 when the rest is a tail the policy learns.
///
/// Both flows give the same counts; their sum is the sample's learn calls.
pub fn expected_learns(node0_chunks: u64, chunk_sizes: &[usize], tail: TailPolicy) -> Vec<u64> {
    let mut counts = vec![node0_chunks];
    let mut names = node0_chunks;
    for &size in chunk_sizes {
        names = match size as u64 {
            0 => 0,
            c => {
                let rest = names % c;
                names / c + u64::from(rest > 0 && tail.learns(rest as usize, size))
            }
        };
        counts.push(names);
    }
    counts
}

/// Tokens under one full pattern at `level`: c0 · c1 · ... · c_level, where
/// `chunk_sizes` starts with node0's (the reference's "receptive field").
pub fn receptive_field(chunk_sizes: &[usize], level: usize) -> u64 {
    chunk_sizes
        .iter()
        .take(level + 1)
        .fold(1u64, |acc, &c| acc.saturating_mul(c as u64))
}

/// The fewest node0 chunks a sample needs for `level` to learn at least once, with
/// levels 1, 2, ... of `chunk_sizes`; `None` past the top or on overflow.
///
/// Explains an idle level: with [8, 8, 8] above node0, node3 needs 74 chunks.
pub fn min_node0_chunks(chunk_sizes: &[usize], level: usize, tail: TailPolicy) -> Option<u64> {
    if level > chunk_sizes.len() {
        return None;
    }
    let mut needed = 1u64;
    for &size in chunk_sizes[..level].iter().rev() {
        let c = size as u64;
        needed = match tail {
            TailPolicy::LearnIfAtLeastTwo => (needed - 1).checked_mul(c)?.checked_add(c.min(2))?,
            TailPolicy::DropPartial => needed.checked_mul(c)?,
        };
        if needed == 0 {
            return None;
        }
    }
    Some(needed)
}
