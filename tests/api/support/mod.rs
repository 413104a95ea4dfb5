//! What every test needs: a node of its own on a random port with a database of its own,
//! users that sign up and pair, and a WebSocket client that speaks the contract.

use std::net::SocketAddr;
use std::time::Duration;

use clap::{CommandFactory, FromArgMatches, Parser};
use duet::config::Config;
use futures_util::{SinkExt, StreamExt};
use reqwest::StatusCode;
use sea_orm::{ConnectionTrait, Database};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use uuid::Uuid;

mod cluster;
mod db;
mod history;
mod node;
mod questions;
mod socket;
mod user;

pub use cluster::*;
pub use db::*;
pub use history::*;
pub use node::*;
pub use questions::*;
pub use socket::*;
pub use user::*;
