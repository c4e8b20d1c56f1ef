//! A copy of Wireshark 4.0's stats_tree (epan/stats_tree.c) as used by `-z dns,tree`:
//! counters, integer/float averages, 5 ms burst buckets in a 100 ms window, and the
//! plain-text layout tshark prints.

use serde::Serialize;
use std::collections::VecDeque;

const BURST_RESOLUTION_MS: f64 = 5.0; // prefs.st_burst_resolution
const BURST_WINDOW_MS: f64 = 100.0; // prefs.st_burst_windowlen
const INDENT_MAX: usize = 32;

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum DataType {
    Int,
    Float,
}

#[derive(Clone, Copy)]
struct Bucket {
    no: f64,
    count: i64,
    start_time: f64,
}

/// What a node's name, links and averages are: read when the tree is printed, and by the
/// few averaging nodes per message.
pub struct Node {
    pub name: String,
    parent: Option<usize>,
    children: Vec<usize>,
    datatype: DataType,
    int_total: i64,
    int_min: i32,
    int_max: i32,
    float_total: f64,
    float_min: f32,
    float_max: f32,
    average: bool,
    /// A node ticked exactly when `burst_from` is (same messages, same times) has the same
    /// burst figures: it borrows them instead of keeping its own buckets (a third of the
    /// tree's work).
    burst_from: Option<usize>,
    /// Pivot children by the numeric value they stand for (few: a linear scan is fastest).
    by_value: Vec<(u32, usize)>,
}

/// What every tick of a node changes, one cache line per node and apart from `Node`: a
/// message ticks 20 to 50 nodes of up to three trees, and with the whole node (four
/// cache lines) those ticks were mostly L1 misses.
#[repr(align(64))]
#[derive(Clone)]
struct Hot {
    /// Signed: Wireshark 4.4 decrements some counters (dns_qr's "Unanswered").
    counter: i64,
    /// The newest bucket of the burst window (the older ones are in `StatsTree::older`).
    tail: Bucket,
    bcount: i64,
    max_burst: i64,
    burst_time: f64,
    /// `Node::burst_from` is set: ticks only count.
    mirrored: bool,
}

impl Node {
    fn new(name: &str, parent: Option<usize>, datatype: DataType) -> Node {
        Node {
            name: name.to_string(),
            parent,
            children: Vec::new(),
            datatype,
            int_total: 0,
            int_min: i32::MAX,
            int_max: i32::MIN,
            float_total: 0.0,
            float_min: f32::MAX,
            float_max: f32::MIN_POSITIVE,
            average: false,
            burst_from: None,
            by_value: Vec::new(),
        }
    }
}

impl Hot {
    fn new() -> Hot {
        Hot {
            counter: 0,
            // Wireshark starts every node with one empty bucket (number 0, time 0).
            tail: Bucket { no: 0.0, count: 0, start_time: 0.0 },
            bcount: 0,
            max_burst: 0,
            burst_time: -1.0,
            mirrored: false,
        }
    }

    /// update_burst_calc, including its handling of time going backwards.
    /// `current` is floor(now / resolution), computed once per message.  The newest bucket
    /// lives inline (`tail`), the older ones of the window in `older` (touched only when
    /// the bucket changes or a new maximum needs the oldest bucket's start).
    /// Inlined where a tick is made: the common case (another tick in the newest bucket,
    /// no new maximum) is a few instructions; the rest is out of line.
    #[inline]
    /// `older[id]` is this node's older buckets (indexed only off the common path).
    fn burst(&mut self, older: &mut [VecDeque<Bucket>], id: usize, now: f64, current: f64, value: i64) {
        if current == self.tail.no {
            self.tail.count += value;
            if self.tail.start_time > now {
                self.tail.start_time = now;
            }
            self.bcount += value;
            if self.bcount > self.max_burst {
                self.new_max(&older[id]);
            }
        } else {
            self.burst_moved(&mut older[id], now, current, value);
        }
    }

    /// The window's count is a new maximum: it starts at the oldest bucket of the window
    /// (the head of Wireshark's bucket list).
    #[inline(never)]
    fn new_max(&mut self, older: &VecDeque<Bucket>) {
        self.max_burst = self.bcount;
        self.burst_time = older.front().unwrap_or(&self.tail).start_time;
    }

    /// `burst` when the tick is not in the newest bucket.
    #[inline(never)]
    fn burst_moved(&mut self, older: &mut VecDeque<Bucket>, now: f64, current: f64, value: i64) {
        self.burst_slow(older, now, current, value, BURST_WINDOW_MS / BURST_RESOLUTION_MS);
        if self.bcount > self.max_burst {
            self.new_max(older);
        }
    }

    #[inline]
    fn burst_slow(&mut self, older: &mut VecDeque<Bucket>, now: f64, current: f64, value: i64, win: f64) {
        let head_no = |older: &VecDeque<Bucket>, tail: &Bucket| older.front().unwrap_or(tail).no;
        if current > self.tail.no {
            let old = std::mem::replace(&mut self.tail, Bucket { no: current, count: value, start_time: now });
            older.push_back(old);
            self.bcount += value;
            while current >= head_no(older, &self.tail) + win {
                // The tail itself is never that old, so `older` holds the head here.
                let b = older.pop_front().expect("head older than the tail");
                self.bcount -= b.count;
            }
        } else if current < head_no(older, &self.tail) {
            if current + win > self.tail.no {
                older.push_front(Bucket { no: current, count: value, start_time: now });
                self.bcount += value;
            }
        } else {
            // Somewhere in the middle (head.no <= current < tail.no): find the bucket or
            // insert a new one after the last one before it.
            let mut i = older.len();
            while i > 0 && current < older[i - 1].no {
                i -= 1;
            }
            if i > 0 && current == older[i - 1].no {
                let b = &mut older[i - 1];
                b.count += value;
                if b.start_time > now {
                    b.start_time = now;
                }
            } else {
                older.insert(i, Bucket { no: current, count: value, start_time: now });
            }
            self.bcount += value;
        }
    }
}

/// `f64::floor` without the libm call (baseline x86-64 has no rounding instruction; this
/// runs for every message and tree).  Exact for |x| < 2^63, far beyond any time in ms /
/// 5; may give 0.0 for -0.0, which compares equal everywhere a bucket number is used.
#[inline]
fn floor(x: f64) -> f64 {
    if x.is_nan() || x.abs() >= 9.0e18 {
        return x.floor();
    }
    let t = x as i64 as f64;
    if t > x { t - 1.0 } else { t }
}

/// One printed row, for JSON output.
#[derive(Serialize, Clone)]
pub struct Row {
    pub depth: usize,
    pub name: String,
    pub count: i64,
    pub average: String,
    pub min: String,
    pub max: String,
    pub rate_ms: String,
    pub percent: String,
    pub burst_rate: String,
    pub burst_start: String,
}

pub struct StatsTree {
    pub title: String,
    /// The first column's header ("Topic / Item"; Wireshark 4.4's DNS tree says "Packet Type").
    pub first_column: String,
    pub nodes: Vec<Node>, // 0 is the root
    /// Per node (same index): the counter and newest burst bucket, and the older buckets.
    hot: Vec<Hot>,
    older: Vec<VecDeque<Bucket>>,
    now: f64,
    bucket: f64,
    start: f64,
    elapsed: f64,
}

impl StatsTree {
    pub fn new(title: &str) -> StatsTree {
        StatsTree { title: title.into(), first_column: "Topic / Item".into(), nodes: vec![Node::new(title, None, DataType::Int)], hot: vec![Hot::new()], older: vec![VecDeque::new()], now: 0.0, bucket: 0.0, start: -1.0, elapsed: 0.0 }
    }

    pub fn create(&mut self, name: &str, parent: usize, datatype: DataType) -> usize {
        let id = self.nodes.len();
        self.nodes.push(Node::new(name, Some(parent), datatype));
        self.hot.push(Hot::new());
        self.older.push(VecDeque::new());
        self.nodes[parent].children.push(id);
        id
    }

    /// A node outside the tree (never printed) that only keeps burst figures for the
    /// nodes that borrow them (`mirror_burst`).
    pub fn detached(&mut self) -> usize {
        self.nodes.push(Node::new("", None, DataType::Int));
        self.hot.push(Hot::new());
        self.older.push(VecDeque::new());
        self.nodes.len() - 1
    }

    /// stats_tree_packet: every tapped message sets "now" (ms since the first frame).
    pub fn set_now(&mut self, now_ms: f64) {
        self.now = now_ms;
        self.bucket = floor(now_ms / BURST_RESOLUTION_MS);
        if self.start < 0.0 {
            self.start = now_ms;
        }
        self.elapsed = self.now - self.start;
    }

    pub fn tick(&mut self, id: usize) {
        self.increase(id, 1);
    }

    /// stats_tree_manip_node(MN_INCREASE): the counter and the burst buckets move by `value`.
    /// Inlined: some twenty per message, and the common path is a few instructions.
    #[inline]
    pub fn increase(&mut self, id: usize, value: i64) {
        let (now, bucket) = (self.now, self.bucket);
        let h = &mut self.hot[id];
        h.counter += value;
        h.burst(&mut self.older, id, now, bucket, value);
    }

    /// The child of `parent` called `name`, created on first use (a node looked up by
    /// name, as tick_stat_node does).
    pub fn child(&mut self, parent: usize, name: &str) -> usize {
        if let Some(&c) = self.nodes[parent].children.iter().find(|&&c| self.nodes[c].name == name) {
            return c;
        }
        self.create(name, parent, DataType::Int)
    }

    /// tick_stat_node(name, parent): find or create the child, then tick it.
    pub fn tick_child(&mut self, parent: usize, name: &str) -> usize {
        let c = self.child(parent, name);
        self.tick(c);
        c
    }

    /// stats_tree_tick_pivot: the pivot and its child named after `value`.
    pub fn tick_pivot(&mut self, pivot: usize, value: u32, name: impl FnOnce() -> String) {
        self.tick_or_count(pivot);
        let found = self.nodes[pivot].by_value.iter().find(|(v, _)| *v == value).map(|&(_, c)| c);
        let child = match found {
            Some(c) => c,
            None => {
                let c = self.create(&name(), pivot, DataType::Int);
                self.nodes[pivot].by_value.push((value, c));
                c
            }
        };
        self.tick(child);
    }

    /// The children of a pivot ticked by `tick_pivot`, with the value each stands for,
    /// in creation order.
    pub fn pivot_children(&self, pivot: usize) -> &[(u32, usize)] {
        &self.nodes[pivot].by_value
    }

    /// Make node `id` what node `from` of `src` is: counter, burst figures and averages
    /// (for a node that received exactly the same ticks in `src`).  Its name, links and
    /// burst borrowing stay; a borrowing node must borrow in `src` too.
    pub fn copy_node(&mut self, id: usize, src: &StatsTree, from: usize) {
        debug_assert_eq!(self.hot[id].mirrored, src.hot[from].mirrored);
        self.hot[id] = src.hot[from].clone();
        self.older[id].clone_from(&src.older[from]);
        let (n, f) = (&mut self.nodes[id], &src.nodes[from]);
        n.int_total = f.int_total;
        n.int_min = f.int_min;
        n.int_max = f.int_max;
        n.float_total = f.float_total;
        n.float_min = f.float_min;
        n.float_max = f.float_max;
        n.average = f.average;
    }

    /// Take `src`'s clock (first and latest instant) as if it had been given the same
    /// `set_now` calls.
    pub fn copy_clock(&mut self, src: &StatsTree) {
        (self.now, self.bucket, self.start, self.elapsed) = (src.now, src.bucket, src.start, src.elapsed);
    }

    /// Declare that `id` is ticked exactly when `like` is, from the first message on; ticks of
    /// `id` then go through `count` and `avg_int_counted`, and its burst columns are `like`'s.
    pub fn mirror_burst(&mut self, id: usize, like: usize) {
        self.nodes[id].burst_from = Some(like);
        self.hot[id].mirrored = true;
    }

    /// `tick`, or `count` for a node whose burst figures are borrowed.
    pub fn tick_or_count(&mut self, id: usize) {
        if self.hot[id].mirrored {
            self.count(id);
        } else {
            self.tick(id);
        }
    }

    /// `increase`, or only the counter for a node whose burst figures are borrowed.
    #[inline]
    pub fn increase_or_count(&mut self, id: usize, value: i64) {
        if self.hot[id].mirrored {
            self.hot[id].counter += value;
        } else {
            self.increase(id, value);
        }
    }

    /// A tick of a node whose burst figures are borrowed (see `mirror_burst`).
    pub fn count(&mut self, id: usize) {
        debug_assert!(self.hot[id].mirrored);
        self.hot[id].counter += 1;
    }

    pub fn avg_int(&mut self, id: usize, value: i32) {
        self.tick_or_count(id);
        let n = &mut self.nodes[id];
        n.int_total += value as i64;
        n.int_min = n.int_min.min(value);
        n.int_max = n.int_max.max(value);
        n.average = true;
    }

    /// `avg_int` `n` times with one value at one instant, in one step: the counter and
    /// the burst buckets move by `n` at once, which leaves them as `n` ticks would (the
    /// window is the same for all, and with positive steps the maximum is the last one).
    pub fn avg_int_n(&mut self, id: usize, value: i32, n: i64) {
        self.increase_or_count(id, n);
        let node = &mut self.nodes[id];
        node.int_total += value as i64 * n;
        node.int_min = node.int_min.min(value);
        node.int_max = node.int_max.max(value);
        node.average = true;
    }

    pub fn avg_float(&mut self, id: usize, value: f32) {
        self.tick(id);
        let n = &mut self.nodes[id];
        // float_total is a gdouble: single-precision values summed in double precision.
        n.float_total += value as f64;
        if n.float_min > value {
            n.float_min = value;
        }
        if n.float_max < value {
            n.float_max = value;
        }
        n.average = true;
    }

    /// A top-level row shows what follows the last '/' of its name (stats_tree_get_displayname).
    fn display_name(&self, id: usize) -> &str {
        let n = &self.nodes[id];
        if n.parent == Some(0) {
            n.name.rsplit('/').next().unwrap_or(&n.name)
        } else {
            &n.name
        }
    }

    fn values(&self, id: usize) -> [String; 9] {
        let n = &self.nodes[id];
        let counter = self.hot[id].counter;
        let (avg, min, max) = if n.average {
            if counter > 0 {
                match n.datatype {
                    DataType::Int => (
                        format!("{:.2}", (n.int_total as f32 / counter as f32) as f64),
                        n.int_min.to_string(),
                        n.int_max.to_string(),
                    ),
                    DataType::Float => (
                        format!("{:.2}", n.float_total / counter as f64),
                        format!("{:.6}", n.float_min as f64),
                        format!("{:.6}", n.float_max as f64),
                    ),
                }
            } else {
                ("-".into(), "-".into(), "-".into())
            }
        } else {
            (String::new(), String::new(), String::new())
        };
        let rate = if self.elapsed != 0.0 { format!("{:.4}", (counter as f32) as f64 / self.elapsed) } else { String::new() };
        let percent = match n.parent {
            Some(p) if self.hot[p].counter > 0 => {
                format!("{:.2}%", (counter as f64 * 100.0) / self.hot[p].counter as f64)
            }
            Some(0) => "100%".into(),
            _ => String::new(),
        };
        let b = &self.hot[n.burst_from.unwrap_or(id)];
        let (br, bt) = if b.max_burst != 0 {
            (format!("{:.4}", b.max_burst as f64 / BURST_WINDOW_MS), format!("{:.3}", b.burst_time / 1000.0))
        } else {
            ("-".into(), "-".into())
        };
        [self.display_name(id).to_string(), counter.to_string(), avg, min, max, rate, percent, br, bt]
    }

    /// Children in tshark's order: by count, then by name (byte order), both descending.
    fn sorted_children(&self, id: usize) -> Vec<usize> {
        let mut ch = self.nodes[id].children.clone();
        ch.sort_by(|&a, &b| {
            let (na, nb) = (&self.nodes[a], &self.nodes[b]);
            self.hot[b].counter.cmp(&self.hot[a].counter).then_with(|| nb.name.as_bytes().cmp(na.name.as_bytes()))
        });
        ch
    }

    fn max_namelen(&self, id: usize, indent: usize) -> usize {
        let indent = indent.min(INDENT_MAX);
        let mut m = self.display_name(id).len() + indent;
        for &c in &self.nodes[id].children {
            m = m.max(self.max_namelen(c, indent + 1));
        }
        m
    }

    fn walk(&self, id: usize, depth: usize, sort: bool, out: &mut Vec<(usize, usize)>) {
        out.push((id, depth));
        let children = if sort { self.sorted_children(id) } else { self.nodes[id].children.clone() };
        for c in children {
            self.walk(c, (depth + 1).min(INDENT_MAX), true, out);
        }
    }

    fn order(&self) -> Vec<(usize, usize)> {
        let mut out = Vec::new();
        // Top-level rows keep their creation order; deeper levels are sorted.
        for &c in &self.nodes[0].children {
            self.walk(c, 0, true, &mut out);
        }
        out
    }

    pub fn rows(&self) -> Vec<Row> {
        self.order()
            .into_iter()
            .map(|(id, depth)| {
                let [name, count, average, min, max, rate_ms, percent, burst_rate, burst_start] = self.values(id);
                Row {
                    depth,
                    name,
                    count: count.parse().unwrap_or(0),
                    average,
                    min,
                    max,
                    rate_ms,
                    percent,
                    burst_rate,
                    burst_start,
                }
            })
            .collect()
    }

    /// stats_tree_format_as_str(ST_FORMAT_PLAIN) as printed by tshark.
    pub fn render_plain(&self) -> String {
        const COLS: [&str; 9] =
            ["", "Count", "Average", "Min Val", "Max Val", "Rate (ms)", "Percent", "Burst Rate", "Burst Start"];
        let maxnamelen = self.max_namelen(0, 0);
        let sep_len = maxnamelen + 8 * 14;
        let mut s = String::new();
        s.push('\n');
        s.push_str(&"=".repeat(sep_len));
        s.push('\n');
        s.push_str(&self.title);
        s.push_str(":\n");
        s.push_str(&format!("{:<w$}", self.first_column, w = maxnamelen));
        for c in &COLS[1..] {
            s.push_str(&format!(" {c:<13}"));
        }
        s.push('\n');
        s.push_str(&"-".repeat(sep_len));
        s.push('\n');
        for (id, depth) in self.order() {
            let v = self.values(id);
            s.push_str(&" ".repeat(depth));
            s.push_str(&format!("{:<w$}", v[0], w = maxnamelen.saturating_sub(depth)));
            for x in &v[1..] {
                s.push_str(&format!(" {x:<13}"));
            }
            s.push('\n');
        }
        s.push('\n');
        s.push_str(&"-".repeat(sep_len));
        s.push('\n');
        s
    }
}
