//! The gRPC probe: `grpc.health.v1.Health/Check` over plain HTTP/2, as the
//! upstream kubelet does it.

use std::net::IpAddr;

use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

/// Checks `service` (empty: the server as a whole) on `ip:port`.
pub(crate) async fn check(ip: IpAddr, port: u16, service: &str) -> Result<(), String> {
    let host = match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("[{v6}]"),
    };
    let endpoint = format!("http://{host}:{port}");
    let channel = tonic::transport::Endpoint::from_shared(endpoint.clone())
        .map_err(|e| e.to_string())?
        .connect()
        .await
        .map_err(|e| format!("failed to connect service {endpoint:?} within the probe timeout: {e}"))?;
    let response = HealthClient::new(channel)
        .check(HealthCheckRequest { service: service.to_owned() })
        .await
        .map_err(|status| format!("health rpc probe failed: {}", status.message()))?;
    match response.into_inner().status() {
        ServingStatus::Serving => Ok(()),
        other => Err(format!("service unhealthy (responded with {:?})", other.as_str_name())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn serving_and_not_serving() {
        let (reporter, service) = tonic_health::server::health_reporter();
        reporter.set_service_status("ok", tonic_health::ServingStatus::Serving).await;
        reporter.set_service_status("down", tonic_health::ServingStatus::NotServing).await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let incoming = tonic::transport::server::TcpIncoming::from(listener);
        let server =
            tokio::spawn(tonic::transport::Server::builder().add_service(service).serve_with_incoming(incoming));
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        assert_eq!(check(ip, port, "ok").await, Ok(()));
        let down = check(ip, port, "down").await.unwrap_err();
        assert!(down.contains("NOT_SERVING"), "{down}");
        assert!(check(ip, port, "unknown").await.is_err());
        server.abort();
        assert!(check(ip, 1, "").await.unwrap_err().contains("failed to connect"));
    }
}
