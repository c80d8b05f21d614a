//! What a cgroup v2 path says about a process: its systemd unit, container id and Kubernetes
//! pod UID, for the layouts of systemd, Docker, containerd, CRI-O and kubelet (systemd and
//! cgroupfs drivers).

use std::sync::LazyLock;

use regex::Regex;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CgroupInfo {
    /// e.g. `nginx.service` (the innermost `.service` component).
    pub systemd_unit: Option<String>,
    /// 64 hex digits.
    pub container_id: Option<String>,
    /// With dashes, as Kubernetes prints it.
    pub pod_uid: Option<String>,
}

static CONTAINER: LazyLock<Regex> = LazyLock::new(|| {
    // docker-<id>.scope, cri-containerd-<id>.scope, crio-<id>.scope, libpod-<id>.scope, or a
    // bare <id> component (cgroupfs drivers, /docker/<id>).
    Regex::new(r"^(?:[a-z-]+-)?([0-9a-f]{64})(?:\.scope)?$").expect("valid regex")
});
static POD: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"pod([0-9a-f]{8}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{12})(?:\.slice)?$",
    )
    .expect("valid regex")
});

pub fn parse(path: &str) -> CgroupInfo {
    let mut info = CgroupInfo::default();
    for part in path.split('/').filter(|p| !p.is_empty()) {
        if let Some(c) = CONTAINER.captures(part) {
            info.container_id = Some(c[1].to_string());
        } else if let Some(c) = POD.captures(part) {
            info.pod_uid = Some(c[1].replace('_', "-"));
        } else if part.ends_with(".service") && !part.starts_with("user@") {
            info.systemd_unit = Some(part.to_string());
        }
    }
    info
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "4f1c2a9d8e7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d";

    #[test]
    fn layouts() {
        let unit = parse("/system.slice/billing.service");
        assert_eq!(unit.systemd_unit.as_deref(), Some("billing.service"));
        assert_eq!(unit.container_id, None);
        let user = parse("/user.slice/user-1000.slice/user@1000.service/app.slice/web.service");
        assert_eq!(user.systemd_unit.as_deref(), Some("web.service"));
        for p in [
            format!("/system.slice/docker-{ID}.scope"),
            format!("/docker/{ID}"),
            format!("/system.slice/crio-{ID}.scope"),
        ] {
            assert_eq!(parse(&p).container_id.as_deref(), Some(ID), "{p}");
        }
        let k8s = parse(&format!(
            "/kubepods.slice/kubepods-burstable.slice/\
             kubepods-burstable-pod0a1b2c3d_4e5f_6789_abcd_ef0123456789.slice/cri-containerd-{ID}.scope"
        ));
        assert_eq!(k8s.container_id.as_deref(), Some(ID));
        assert_eq!(
            k8s.pod_uid.as_deref(),
            Some("0a1b2c3d-4e5f-6789-abcd-ef0123456789")
        );
        let cgroupfs = parse(&format!(
            "/kubepods/besteffort/pod0a1b2c3d-4e5f-6789-abcd-ef0123456789/{ID}"
        ));
        assert_eq!(cgroupfs.container_id.as_deref(), Some(ID));
        assert!(cgroupfs.pod_uid.is_some());
        assert_eq!(parse("/"), CgroupInfo::default());
    }
}
