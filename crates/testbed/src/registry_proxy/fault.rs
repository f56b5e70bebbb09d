//! Delivering an answer, faithfully or with a blob fault.

use std::io::Result;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use super::http::Response;
use super::{Mode, TRICKLE_INTERVAL};

/// Sends `response` unchanged.
pub(super) async fn send(conn: &mut TcpStream, response: &Response) -> Result<()> {
    conn.write_all(&response.head(response.length())).await?;
    conn.write_all(&response.body).await?;
    conn.flush().await?;
    conn.shutdown().await
}

/// Sends a successful blob answer with the fault of `mode`.
pub(super) async fn blob(mut conn: TcpStream, mut response: Response, mode: Mode) -> Result<()> {
    let half = response.body.len() / 2;
    match mode {
        Mode::Reset => {
            // The whole length is announced, half is sent, then a TCP RST.
            conn.write_all(&response.head(response.body.len())).await?;
            conn.write_all(&response.body[..half]).await?;
            conn.flush().await?;
            conn.set_zero_linger()?;
            drop(conn);
            Ok(())
        }
        Mode::Truncate => {
            // A well-formed, shorter answer: only the digest (and the
            // manifest's size) can tell.
            response.body.truncate(half);
            send(&mut conn, &response).await
        }
        Mode::Corrupt => {
            response.body[half] ^= 0xff;
            send(&mut conn, &response).await
        }
        Mode::Trickle => {
            conn.write_all(&response.head(response.body.len())).await?;
            conn.flush().await?;
            for byte in &response.body {
                conn.write_all(std::slice::from_ref(byte)).await?;
                conn.flush().await?;
                tokio::time::sleep(TRICKLE_INTERVAL).await;
            }
            conn.shutdown().await
        }
        Mode::Pass | Mode::ServerError(_) | Mode::Flap401 => send(&mut conn, &response).await,
    }
}
