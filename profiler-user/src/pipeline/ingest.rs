//! Ingest: a drained batch becomes counts of resolved, symbol-independent stacks in the
//! current window. Each user stack is completed (frame-0 repair, Go top frames) against the
//! snapshot of the image it was sampled in, and every address is turned into (file, link
//! address) while that snapshot is at hand.

use std::collections::HashSet;

use profiler_ebpf::{EVENT_KIND_SHIFT, Frame0Key, Frame0Rule, KEY_FLAG_BP_IS_SP, SampleKey};

use super::stacks::{FrameRef, StackTable};
use super::window::{Counts, SampleTarget, TargetMeta, Window};
use crate::process::registry::Registry;
use crate::profile::Mapping;
use crate::sampler::Batch;
use crate::unwind::{self, RepairStats};

/// Frame-0 rules remembered as sent, at most this many (then the set starts over: resending
/// a rule is harmless).
const MAX_KNOWN_RULES: usize = 1 << 18;

#[derive(Default)]
pub struct Ingest {
    pub repair: RepairStats,
    /// Whether any kernel frame was seen (kallsyms is loaded then).
    pub saw_kernel_frames: bool,
    known_rules: HashSet<Frame0Key>,
    /// Rules found in this batch, for the kernel.
    pub new_rules: Vec<(Frame0Key, Frame0Rule)>,
    /// Samples whose stack was cut at a return address outside every executable mapping.
    pub cut_at_non_code: u64,
}

impl Ingest {
    pub fn batch(
        &mut self,
        batch: &Batch,
        registry: &mut Registry,
        stacks: &mut StackTable,
        window: &mut Window,
    ) {
        window.batches += 1;
        for (&id, l) in &batch.label_sets {
            window.label_sets.entry(id).or_insert_with(|| l.clone());
        }
        for (key, value) in &batch.counts {
            let SampleKey {
                tgid,
                generation,
                tid,
                kernel_stack_id,
                user_stack_hash,
                frame0,
                flags,
                label_set,
                goid,
            } = *key;
            let mut frames = Vec::new();
            if let Some(k) = batch
                .kernel_stacks
                .get(&kernel_stack_id)
                .filter(|_| kernel_stack_id >= 0)
            {
                frames.extend(k.iter().map(|&pc| FrameRef::Kernel { pc }));
                self.saw_kernel_frames = true;
            }
            // Read the image now if nothing announced it (its comm labels the samples even
            // without a user stack); a failure is counted by the registry.
            let _ = registry.image(tgid, generation);
            if let Some((user, truncated)) = batch.user_stacks.get(&user_stack_hash) {
                if *truncated {
                    window.truncated += value.count;
                }
                if let Some(&ip) = user.first() {
                    registry.refresh_if_unmapped(tgid, generation, ip);
                }
                let snapshot = registry.image(tgid, generation);
                if let (Some(s), Some(&ip)) = (snapshot, user.first()) {
                    let rule_key = Frame0Key {
                        tgid,
                        generation,
                        ip,
                    };
                    if !self.known_rules.contains(&rule_key)
                        && let Some(rule) = unwind::frame0_rule(s, ip)
                    {
                        if self.known_rules.len() >= MAX_KNOWN_RULES {
                            self.known_rules.clear();
                        }
                        self.known_rules.insert(rule_key);
                        self.new_rules.push((rule_key, rule));
                    }
                }
                let completed = unwind::complete_stack(
                    snapshot,
                    user,
                    frame0,
                    flags & KEY_FLAG_BP_IS_SP != 0,
                    &mut self.repair,
                );
                for (i, f) in completed.into_iter().enumerate() {
                    // A caller outside every executable mapping is not a return address: the
                    // walk went through code without frame pointers and read stack data. The
                    // stack ends there (as far as it is known) instead of naming garbage.
                    if i > 0 && snapshot.is_some_and(|s| !s.is_executable(f.pc)) {
                        self.cut_at_non_code += value.count;
                        break;
                    }
                    let resolved = snapshot.and_then(|s| s.resolve(f.pc));
                    let fref = match resolved {
                        Some(r) => {
                            let object = r.object.clone();
                            let entry = &r.mapped.entry;
                            let mapping = stacks.mapping_id(Mapping {
                                start: entry.start,
                                limit: entry.end,
                                offset: entry.offset,
                                file: object.path.clone(),
                                build_id: object.build_id(),
                                has_functions: true,
                                has_filenames: object.go.is_some(),
                                has_line_numbers: object.go.is_some(),
                                has_inline_frames: object.go.is_some(),
                            });
                            let link = r.link_address;
                            window.objects.entry(object.id).or_insert(object.clone());
                            FrameRef::User {
                                object: object.id,
                                mapping,
                                pc: f.pc,
                                link,
                                kind: f.kind,
                                callee_panics: f.callee_panics,
                            }
                        }
                        None => FrameRef::Unknown {
                            pc: f.pc,
                            kind: f.kind,
                        },
                    };
                    frames.push(fref);
                }
            }
            let stack = stacks.intern(frames);
            let target = SampleTarget {
                pid: tgid,
                generation,
                tid,
                goid,
                // A set the drain could not decode is no set.
                label_set: if batch.label_sets.contains_key(&label_set) {
                    label_set
                } else {
                    0
                },
                kind: (flags >> EVENT_KIND_SHIFT) as u8,
            };
            if let std::collections::hash_map::Entry::Vacant(e) =
                window.targets.entry((tgid, generation))
            {
                let comm = registry
                    .image(tgid, generation)
                    .map(|s| s.comm.clone())
                    .or_else(|| registry.info(tgid).map(|i| i.comm.clone()))
                    .filter(|c| !c.is_empty());
                let info = registry.info(tgid).cloned().unwrap_or_default();
                let build = registry
                    .main_object(tgid, generation)
                    .map(|o| o.build_info.clone());
                e.insert(TargetMeta {
                    pid: tgid,
                    process: registry.id(tgid),
                    comm,
                    exe: info.exe,
                    cgroup: info.cgroup,
                    build,
                    kernel_thread: tgid == 2 || info.parent == 2,
                    service_env: info.service_env,
                });
            }
            window.add(
                target,
                stack,
                Counts {
                    count: value.count,
                    weight_ns: value.weight_ns,
                },
            );
        }
    }
}
