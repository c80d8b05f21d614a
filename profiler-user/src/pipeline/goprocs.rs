//! Which processes are Go, and where the kernel finds their goroutine: per image, the
//! runtime offsets of its Go release ([`crate::goruntime::layout`]) and the TLS slot of `g`,
//! handed to the kernel's Go process map.

use profiler_ebpf::{GO_LABELS_MAP, GO_LABELS_SLICE, GoProcInfo};

use crate::goruntime::{LabelsRepr, layout_for};
use crate::process::ObjectFile;

/// Why a Go process gets no goroutine data.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum GoProcError {
    #[error("not a Go program")]
    NotGo,
    #[error("Go version {0:?} not understood")]
    BadVersion(String),
    #[error(
        "{0}: Go release not in the runtime offsets table; samples carry no goroutine ids or labels"
    )]
    UnknownRelease(String),
    #[error(
        "{0}: the TLS slot of g could not be found ({1}); samples carry no goroutine ids or labels"
    )]
    TlsSlot(String, String),
}

/// `go1.23.9` → `(1, 23)`; also `go1.24rc1`, `go1.22`.
pub fn release(version: &str) -> Option<(u32, u32)> {
    let v = version.strip_prefix("go")?;
    let mut parts = v.split('.');
    let major = parts.next()?.parse().ok()?;
    let minor: String = parts
        .next()?
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    Some((major, minor.parse().ok()?))
}

/// What the kernel needs to read the goroutine of an image whose executable is `exe`.
pub fn go_proc_info(exe: &ObjectFile, generation: u32) -> Result<GoProcInfo, GoProcError> {
    let version = exe
        .build_info
        .go_version
        .as_deref()
        .ok_or(GoProcError::NotGo)?;
    let rel = release(version).ok_or_else(|| GoProcError::BadVersion(version.to_string()))?;
    let layout = layout_for(rel).ok_or_else(|| GoProcError::UnknownRelease(version.to_string()))?;
    let tls = exe
        .g_tls_offset()
        .map_err(|e| GoProcError::TlsSlot(version.to_string(), e))
        .and_then(|off| {
            i32::try_from(off)
                .map_err(|_| GoProcError::TlsSlot(version.to_string(), format!("{off}")))
        })?;
    Ok(GoProcInfo {
        generation,
        tls_g_offset: tls,
        g_m: layout.g_m,
        m_curg: layout.m_curg,
        g_goid: layout.g_goid,
        g_labels: layout.g_labels,
        labels_repr: match layout.labels {
            LabelsRepr::Map => GO_LABELS_MAP,
            LabelsRepr::Slice => GO_LABELS_SLICE,
        },
        g_stack: layout.g_stack_lo,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn releases() {
        assert_eq!(release("go1.23.9"), Some((1, 23)));
        assert_eq!(release("go1.24rc1"), Some((1, 24)));
        assert_eq!(release("go1.22"), Some((1, 22)));
        assert_eq!(release("devel +abc"), None);
        assert_eq!(release("go"), None);
    }
}
