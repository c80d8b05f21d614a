//! OTLP profiles over gRPC: `ProfilesService/Export` with tonic, the same request as the
//! HTTP/protobuf transport (see [`super::otlp`]), gzip-compressed on the wire.
//!
//! The sender thread is synchronous ([`Transport::send`]); this transport owns a
//! current-thread tokio runtime and blocks on each call. Retries follow the OTLP rule for gRPC:
//! `CANCELLED`, `DEADLINE_EXCEEDED`, `ABORTED`, `OUT_OF_RANGE`, `UNAVAILABLE` and `DATA_LOSS`
//! are retried, `RESOURCE_EXHAUSTED` only when the server sent a `RetryInfo` (whose delay is
//! honoured, as `Retry-After` is over HTTP); every other code is final.

use std::time::Duration;

use opentelemetry_proto::tonic::collector::profiles::v1development::ExportProfilesServiceRequest;
use opentelemetry_proto::tonic::collector::profiles::v1development::profiles_service_client::ProfilesServiceClient;
use prost::Message as _;
use tonic::Code;
use tonic::codec::CompressionEncoding;
use tonic::metadata::{MetadataKey, MetadataValue};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};
use tonic_types::StatusExt as _;

use super::SinkError;
use super::http::HttpOptions;
use super::queue::{Outcome, Payload, Transport};

pub struct GrpcTransport {
    rt: tokio::runtime::Runtime,
    client: ProfilesServiceClient<Channel>,
    /// `authorization` and the extra headers, as gRPC metadata.
    metadata: Vec<(
        MetadataKey<tonic::metadata::Ascii>,
        MetadataValue<tonic::metadata::Ascii>,
    )>,
}

fn bad(what: &str, e: impl std::fmt::Display) -> SinkError {
    SinkError::Encode(format!("{what}: {e}"))
}

fn read(path: &std::path::Path) -> Result<Vec<u8>, SinkError> {
    std::fs::read(path).map_err(|source| SinkError::Io {
        path: path.to_path_buf(),
        source,
    })
}

impl GrpcTransport {
    /// `endpoint`: `http://collector:4317`, or `https://...` for TLS (system roots plus
    /// `http.ca_file`, and `http.client_cert` when set). Connects lazily: a receiver that is
    /// down at start is retried like any other transport error.
    /// `dev_version`: sent as the `otlp-profiles-development-version` metadata when set.
    pub fn new(
        endpoint: &str,
        http: &HttpOptions,
        dev_version: Option<u32>,
    ) -> Result<GrpcTransport, SinkError> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| bad("tokio runtime", e))?;
        let mut ep = Endpoint::from_shared(endpoint.to_string())
            .map_err(|e| bad(endpoint, e))?
            .user_agent(concat!("gprof-bpf/", env!("CARGO_PKG_VERSION")))
            .map_err(|e| bad("user agent", e))?
            .timeout(http.timeout.unwrap_or(Duration::from_secs(10)))
            .connect_timeout(Duration::from_secs(5));
        if endpoint.starts_with("https://") {
            let mut tls = ClientTlsConfig::new().with_webpki_roots();
            if let Some(ca) = &http.ca_file {
                tls = tls.ca_certificate(Certificate::from_pem(read(ca)?));
            }
            if let Some((cert, key)) = &http.client_cert {
                tls = tls.identity(Identity::from_pem(read(cert)?, read(key)?));
            }
            ep = ep.tls_config(tls).map_err(|e| bad(endpoint, e))?;
        }
        let channel = {
            let _guard = rt.enter();
            ep.connect_lazy()
        };
        let client = ProfilesServiceClient::new(channel)
            .send_compressed(CompressionEncoding::Gzip)
            .accept_compressed(CompressionEncoding::Gzip);
        let mut metadata = Vec::new();
        let mut add = |k: &str, v: String| -> Result<(), SinkError> {
            let key = MetadataKey::from_bytes(k.to_ascii_lowercase().as_bytes())
                .map_err(|e| bad(k, e))?;
            // The value may be a secret: never put it in the error.
            let value = MetadataValue::try_from(v.as_str())
                .map_err(|_| SinkError::Encode(format!("{k}: not a valid header value")))?;
            metadata.push((key, value));
            Ok(())
        };
        if let Some(t) = &http.bearer_token {
            add("authorization", format!("Bearer {}", t.0))?;
        }
        if let Some((user, pass)) = &http.basic_auth {
            use base64::Engine as _;
            let raw = format!("{user}:{}", pass.0);
            let b64 = base64::engine::general_purpose::STANDARD.encode(raw);
            add("authorization", format!("Basic {b64}"))?;
        }
        for (k, v) in &http.headers {
            add(k, v.0.clone())?;
        }
        if let Some(v) = dev_version {
            add("otlp-profiles-development-version", v.to_string())?;
        }
        Ok(GrpcTransport {
            rt,
            client,
            metadata,
        })
    }
}

/// The OTLP retry rule for a gRPC status.
fn outcome(status: &tonic::Status) -> Outcome {
    let code = status.code();
    let reason = format!("grpc_{}", code_name(code));
    let retry_info = status.get_details_retry_info().and_then(|r| r.retry_delay);
    match code {
        Code::Cancelled
        | Code::DeadlineExceeded
        | Code::Aborted
        | Code::OutOfRange
        | Code::Unavailable
        | Code::DataLoss => Outcome::Retry {
            reason,
            after: retry_info,
        },
        Code::ResourceExhausted if retry_info.is_some() => Outcome::Retry {
            reason,
            after: retry_info,
        },
        _ => Outcome::Reject {
            reason,
            message: status.message().chars().take(500).collect(),
        },
    }
}

/// `snake_case` names of the codes, for metric labels (`grpc_unavailable`).
fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "ok",
        Code::Cancelled => "cancelled",
        Code::Unknown => "unknown",
        Code::InvalidArgument => "invalid_argument",
        Code::DeadlineExceeded => "deadline_exceeded",
        Code::NotFound => "not_found",
        Code::AlreadyExists => "already_exists",
        Code::PermissionDenied => "permission_denied",
        Code::ResourceExhausted => "resource_exhausted",
        Code::FailedPrecondition => "failed_precondition",
        Code::Aborted => "aborted",
        Code::OutOfRange => "out_of_range",
        Code::Unimplemented => "unimplemented",
        Code::Internal => "internal",
        Code::Unavailable => "unavailable",
        Code::DataLoss => "data_loss",
        Code::Unauthenticated => "unauthenticated",
    }
}

impl Transport for GrpcTransport {
    fn send(&mut self, p: &Payload) -> Outcome {
        // The payload is the encoded request (the queue keeps bytes, not messages).
        let request = match ExportProfilesServiceRequest::decode(p.pprof.as_slice()) {
            Ok(r) => r,
            Err(e) => {
                return Outcome::Reject {
                    reason: "encode".into(),
                    message: e.to_string(),
                };
            }
        };
        let mut request = tonic::Request::new(request);
        for (k, v) in &self.metadata {
            request.metadata_mut().insert(k.clone(), v.clone());
        }
        let client = &mut self.client;
        match self.rt.block_on(client.export(request)) {
            Ok(r) => {
                if let Some(ps) = r.into_inner().partial_success
                    && ps.rejected_profiles > 0
                {
                    // Accepted in part: nothing to retry (OTLP: partial success is final).
                    tracing::warn!(
                        rejected = ps.rejected_profiles,
                        message = %ps.error_message,
                        "the OTLP receiver rejected part of a request"
                    );
                }
                Outcome::Sent
            }
            Err(status) => outcome(&status),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retryable_codes_follow_the_otlp_rule() {
        let retry = |s: &tonic::Status| matches!(outcome(s), Outcome::Retry { .. });
        assert!(retry(&tonic::Status::unavailable("down")));
        assert!(retry(&tonic::Status::deadline_exceeded("slow")));
        assert!(!retry(&tonic::Status::invalid_argument("bad")));
        assert!(!retry(&tonic::Status::permission_denied("no")));
        // RESOURCE_EXHAUSTED without RetryInfo is final.
        assert!(!retry(&tonic::Status::resource_exhausted("full")));
        let with_info = tonic::Status::with_error_details(
            Code::ResourceExhausted,
            "full",
            tonic_types::ErrorDetails::with_retry_info(Some(Duration::from_secs(3))),
        );
        match outcome(&with_info) {
            Outcome::Retry { reason, after } => {
                assert_eq!(reason, "grpc_resource_exhausted");
                assert_eq!(after, Some(Duration::from_secs(3)));
            }
            o => panic!("{o:?}"),
        }
    }
}
