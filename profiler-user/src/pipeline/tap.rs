//! Taps: "the samples of these processes for the next N seconds, as a profile", asked from
//! another thread (the agent's `/debug/pprof/profile` endpoint) and answered by the running
//! pipeline, so concurrent requests share the one sampler and its windows go on unchanged.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use super::window::{TargetMeta, Window};
use crate::profile::Profile;

/// Which processes a tap wants.
pub type TapFilter = Box<dyn FnMut(&TargetMeta) -> bool + Send>;

pub struct TapRequest {
    pub filter: TapFilter,
    pub duration: Duration,
    /// Gets the profile (possibly empty) when the duration has passed or sampling stops.
    pub reply: tokio::sync::oneshot::Sender<Profile>,
}

/// Where taps are asked for (cloned into the HTTP server).
#[derive(Clone, Default)]
pub struct Taps(Arc<Mutex<Vec<TapRequest>>>);

impl Taps {
    pub fn request(&self, r: TapRequest) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).push(r);
    }

    pub(super) fn take_new(&self) -> Vec<TapRequest> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// A tap being filled.
pub(super) struct Active {
    filter: TapFilter,
    /// The filter's answer per image, asked once.
    wanted: HashMap<(u32, u32), bool>,
    pub until: Instant,
    started: Instant,
    pub window: Window,
    pub reply: tokio::sync::oneshot::Sender<Profile>,
}

impl Active {
    pub fn new(r: TapRequest) -> Active {
        Active {
            filter: r.filter,
            wanted: HashMap::new(),
            until: Instant::now() + r.duration,
            started: Instant::now(),
            window: Window::new(0, SystemTime::now()),
            reply: r.reply,
        }
    }

    /// Adds the samples of one batch's window that the tap wants.
    pub fn add(&mut self, batch: &Window) {
        let Active {
            filter,
            wanted,
            window,
            ..
        } = self;
        let mut keep = |image: (u32, u32)| {
            *wanted
                .entry(image)
                .or_insert_with(|| batch.targets.get(&image).is_some_and(&mut *filter))
        };
        for (&(target, stack), &c) in &batch.counts {
            let image = (target.pid, target.generation);
            if keep(image) {
                window.add(target, stack, c);
                if let Some(m) = batch.targets.get(&image) {
                    window.targets.entry(image).or_insert_with(|| m.clone());
                }
            }
        }
        // Every file the batch points into (cheap: reference counts), so the tap's frames
        // can be symbolized after their processes are gone.
        for (&id, o) in &batch.objects {
            window.objects.entry(id).or_insert_with(|| o.clone());
        }
    }

    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }
}
