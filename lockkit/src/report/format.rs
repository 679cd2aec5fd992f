//! The report as a table for people and as JSON for scripts (written by hand: lockkit has no
//! serialisation dependency, and the shape is small and fixed).

use std::fmt::{self, Write};

use super::{GroupRefs, LockInfo, LockReport, OrderInversion};

/// The holder column: `pid 4121 tid 4123 alive`, `tid 4123 dead`, `-`.
pub(crate) fn holder_text(l: &LockInfo) -> String {
    match l.holder {
        Some(o) if o.alive => format!("pid {} tid {} alive", o.pid, o.tid),
        Some(o) => format!("tid {} DEAD", o.tid),
        None if l.readers > 0 => format!("{} reader(s)", l.readers),
        None => "-".into(),
    }
}

impl fmt::Display for LockReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.locks.is_empty() {
            writeln!(
                f,
                "no lock held or waited for ({} objects scanned)",
                self.objects
            )?;
        } else {
            let place_w = self
                .locks
                .iter()
                .map(|l| l.place().len())
                .max()
                .unwrap_or(0)
                .max(4);
            writeln!(
                f,
                "{:place_w$}  {:16}  {:28}  {:7}  {:>9}  TAKEN AT",
                "LOCK", "KIND", "HOLDER", "WAITERS", "HELD"
            )?;
            for l in &self.locks {
                let held = l
                    .held_for
                    .map_or("-".into(), |d| format!("{:.3}s", d.as_secs_f64()));
                let mut at = l.site.clone().unwrap_or_else(|| "-".into());
                if l.inconsistent {
                    at.push_str("  (holder died: data may need repair)");
                }
                writeln!(
                    f,
                    "{:place_w$}  {:16}  {:28}  {:7}  {:>9}  {}",
                    l.place(),
                    l.kind,
                    holder_text(l),
                    if l.waiters { "yes" } else { "no" },
                    held,
                    at
                )?;
            }
        }
        if self.undescribed > 0 {
            writeln!(
                f,
                "{} object(s) of undescribed types not scanned (type registry full or damaged)",
                self.undescribed
            )?;
        }
        if !self.groups.is_empty() {
            writeln!(f, "group locks of this process (grp-debug):")?;
            for g in &self.groups {
                writeln!(
                    f,
                    "  group #{}: {} reference(s)",
                    g.group,
                    g.references.len()
                )?;
                for r in &g.references {
                    writeln!(f, "    reference taken at {r}")?;
                }
            }
        }
        if !self.inversions.is_empty() {
            writeln!(
                f,
                "lock-order inversions (each order of a pair taken both ways round):"
            )?;
            for i in &self.inversions {
                writeln!(f, "  {i}")?;
            }
        }
        Ok(())
    }
}

/// `s` as a JSON string.
pub(crate) fn json_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

impl LockInfo {
    /// The lock as a JSON object.
    pub fn to_json(&self) -> String {
        let holder = match self.holder {
            Some(o) => format!(
                "{{\"pid\":{},\"tid\":{},\"alive\":{}}}",
                o.pid, o.tid, o.alive
            ),
            None => "null".into(),
        };
        let site = self.site.as_deref().map_or("null".into(), json_str);
        let held = self
            .held_for
            .map_or("null".into(), |d| d.as_millis().to_string());
        format!(
            "{{\"place\":{},\"object\":{},\"field\":{},\"kind\":{},\"offset\":{},\
             \"holder\":{},\"readers\":{},\"waiters\":{},\"inconsistent\":{},\
             \"site\":{},\"held_ms\":{}}}",
            json_str(&self.place()),
            json_str(&self.object),
            json_str(&self.field),
            json_str(&self.kind),
            self.offset,
            holder,
            self.readers,
            self.waiters,
            self.inconsistent,
            site,
            held
        )
    }
}

impl LockReport {
    /// The report as one JSON object: `{"objects":..,"undescribed":..,"locks":[..],
    /// "inversions":[..],"groups":[..]}`.
    pub fn to_json(&self) -> String {
        self.to_json_with(|_| String::new())
    }

    /// [`to_json`](LockReport::to_json), each lock's object extended by the members `extra`
    /// gives for it (`"name":value` pairs joined by commas, or nothing): how a tool adds
    /// what it knows about a lock (lockkit-top: how long it has seen it held).
    pub fn to_json_with(&self, extra: impl Fn(&LockInfo) -> String) -> String {
        let locks: Vec<String> = self
            .locks
            .iter()
            .map(|l| {
                let (mut j, more) = (l.to_json(), extra(l));
                if !more.is_empty() {
                    j.pop();
                    j.push(',');
                    j.push_str(&more);
                    j.push('}');
                }
                j
            })
            .collect();
        let inversions: Vec<String> = self
            .inversions
            .iter()
            .map(OrderInversion::to_json)
            .collect();
        let groups: Vec<String> = self.groups.iter().map(GroupRefs::to_json).collect();
        format!(
            "{{\"objects\":{},\"undescribed\":{},\"locks\":[{}],\"inversions\":[{}],\
             \"groups\":[{}]}}",
            self.objects,
            self.undescribed,
            locks.join(","),
            inversions.join(","),
            groups.join(",")
        )
    }
}

impl fmt::Display for OrderInversion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let at = |s: &Option<String>| s.clone().unwrap_or_else(|| "?".into());
        write!(
            f,
            "{} taken at {} while holding {} (taken at {}), by pid {} tid {}",
            self.taken,
            at(&self.taken_at),
            self.held,
            at(&self.held_at),
            self.pid,
            self.tid
        )
    }
}

impl OrderInversion {
    /// The order as a JSON object.
    pub fn to_json(&self) -> String {
        let opt = |s: &Option<String>| s.as_deref().map_or("null".into(), json_str);
        format!(
            "{{\"held\":{},\"held_at\":{},\"taken\":{},\"taken_at\":{},\"pid\":{},\"tid\":{}}}",
            json_str(&self.held),
            opt(&self.held_at),
            json_str(&self.taken),
            opt(&self.taken_at),
            self.pid,
            self.tid
        )
    }
}

impl GroupRefs {
    /// The group as a JSON object: `{"group":..,"references":["file:line:col",..]}`.
    pub fn to_json(&self) -> String {
        let refs: Vec<String> = self.references.iter().map(|r| json_str(r)).collect();
        format!(
            "{{\"group\":{},\"references\":[{}]}}",
            self.group,
            refs.join(",")
        )
    }
}
