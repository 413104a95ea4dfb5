//! A signed-in user speaking HTTP to a node, and pairing two of them.

use super::*;

/// A signed-in user talking to one node over HTTP and WebSocket.
#[derive(Clone)]
pub struct User {
    pub base: String,
    pub addr: SocketAddr,
    pub token: String,
    pub id: Uuid,
    pub username: String,
}

pub const PASSWORD: &str = "correct horse battery";

pub async fn request(
    method: reqwest::Method,
    url: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, Value, reqwest::header::HeaderMap) {
    let http = reqwest::Client::new();
    let mut req = http.request(method, url);
    if let Some(token) = token {
        req = req.header("cookie", format!("duet_session={token}"));
    }
    if let Some(body) = body {
        req = req.json(&body);
    }
    let res = req.send().await.expect("the node answers");
    let status = res.status();
    let headers = res.headers().clone();
    let text = res.text().await.unwrap_or_default();
    let value = serde_json::from_str(&text).unwrap_or(Value::Null);
    (status, value, headers)
}

pub fn session_cookie(headers: &reqwest::header::HeaderMap) -> Option<String> {
    headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|c| c.strip_prefix("duet_session="))
        .map(|c| c.split(';').next().unwrap_or_default().to_owned())
        .filter(|t| !t.is_empty())
}

impl User {
    pub async fn signup(node: &TestNode, username: &str) -> User {
        User::signup_at(node.addr, username).await
    }

    pub async fn signup_at(addr: SocketAddr, username: &str) -> User {
        let base = format!("http://{addr}");
        let body = json!({ "username": username, "password": PASSWORD });
        let (status, value, headers) = request(
            reqwest::Method::POST,
            &format!("{base}/api/signup"),
            None,
            Some(body),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "signup of {username}: {value}");
        User::from_response(addr, &value, &headers)
    }

    pub async fn login_at(addr: SocketAddr, username: &str) -> User {
        let base = format!("http://{addr}");
        let body = json!({ "username": username, "password": PASSWORD });
        let (status, value, headers) = request(
            reqwest::Method::POST,
            &format!("{base}/api/login"),
            None,
            Some(body),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "login of {username}: {value}");
        User::from_response(addr, &value, &headers)
    }

    fn from_response(
        addr: SocketAddr,
        value: &Value,
        headers: &reqwest::header::HeaderMap,
    ) -> User {
        User {
            base: format!("http://{addr}"),
            addr,
            token: session_cookie(headers).expect("a session cookie"),
            id: value["user"]["id"]
                .as_str()
                .and_then(|s| s.parse().ok())
                .expect("a user id"),
            username: value["user"]["username"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        }
    }

    /// The same account, talking to another node.
    pub fn on(&self, addr: SocketAddr) -> User {
        User {
            base: format!("http://{addr}"),
            addr,
            ..self.clone()
        }
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        let (s, v, _) = request(
            reqwest::Method::GET,
            &format!("{}{path}", self.base),
            Some(&self.token),
            None,
        )
        .await;
        (s, v)
    }

    pub async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        let (s, v, _) = request(
            reqwest::Method::POST,
            &format!("{}{path}", self.base),
            Some(&self.token),
            Some(body),
        )
        .await;
        (s, v)
    }

    pub async fn put(&self, path: &str) -> (StatusCode, Value) {
        let (s, v, _) = request(
            reqwest::Method::PUT,
            &format!("{}{path}", self.base),
            Some(&self.token),
            None,
        )
        .await;
        (s, v)
    }

    pub async fn patch(&self, path: &str, body: Value) -> (StatusCode, Value) {
        let (s, v, _) = request(
            reqwest::Method::PATCH,
            &format!("{}{path}", self.base),
            Some(&self.token),
            Some(body),
        )
        .await;
        (s, v)
    }

    pub async fn delete(&self, path: &str) -> (StatusCode, Value) {
        let (s, v, _) = request(
            reqwest::Method::DELETE,
            &format!("{}{path}", self.base),
            Some(&self.token),
            None,
        )
        .await;
        (s, v)
    }

    pub async fn socket(&self) -> Socket {
        self.socket_at("/ws").await
    }

    /// The id of the couple the user is in, as `/api/me` shows it.
    pub async fn couple_id(&self) -> Uuid {
        let (_, me) = self.get("/api/me").await;
        me["couple"]["id"]
            .as_str()
            .and_then(|id| id.parse().ok())
            .expect("the user is in a couple")
    }

    /// Opens `/ws` and reads through `hello`, the replay and `synced`.
    pub async fn socket_at(&self, path: &str) -> Socket {
        let mut socket = self
            .try_socket(path, None)
            .await
            .unwrap_or_else(|(s, v)| panic!("upgrade of {path} refused: {s} {v}"));
        socket.hello = socket.expect("hello").await;
        loop {
            let frame = socket.next().await;
            if frame["type"] == "synced" {
                socket.synced = frame;
                break;
            }
            socket.replay.push(frame);
        }
        socket
    }

    pub async fn try_socket(
        &self,
        path: &str,
        origin: Option<&str>,
    ) -> Result<Socket, (u16, Value)> {
        try_socket(self.addr, path, Some(&self.token), origin).await
    }
}

impl User {
    /// A bare socket on `path` (nothing read from it yet), with the kernel's receive buffer
    /// as small as `recv_buffer` if given: a client that can stop reading in earnest.
    pub async fn raw_socket(
        &self,
        path: &str,
        recv_buffer: Option<u32>,
    ) -> WebSocketStream<TcpStream> {
        let tcp = tokio::net::TcpSocket::new_v4().expect("a TCP socket");
        if let Some(size) = recv_buffer {
            tcp.set_recv_buffer_size(size)
                .expect("a small receive buffer");
        }
        let stream = tcp.connect(self.addr).await.expect("the node accepts");
        let mut req = format!("ws://{}{path}", self.addr)
            .into_client_request()
            .expect("a websocket request");
        let cookie =
            HeaderValue::from_str(&format!("duet_session={}", self.token)).expect("a header");
        req.headers_mut().insert("cookie", cookie);
        let (ws, _) = tokio_tungstenite::client_async(req, stream)
            .await
            .expect("the upgrade");
        ws
    }
}

pub async fn try_socket(
    addr: SocketAddr,
    path: &str,
    token: Option<&str>,
    origin: Option<&str>,
) -> Result<Socket, (u16, Value)> {
    let mut req = format!("ws://{addr}{path}")
        .into_client_request()
        .expect("a websocket request");
    if let Some(token) = token {
        let cookie = HeaderValue::from_str(&format!("duet_session={token}")).expect("a header");
        req.headers_mut().insert("cookie", cookie);
    }
    if let Some(origin) = origin {
        req.headers_mut()
            .insert("origin", HeaderValue::from_str(origin).expect("a header"));
    }
    match tokio_tungstenite::connect_async(req).await {
        Ok((ws, _)) => Ok(Socket {
            ws,
            hello: Value::Null,
            replay: Vec::new(),
            synced: Value::Null,
        }),
        Err(tungstenite::Error::Http(response)) => {
            let status = response.status().as_u16();
            let body = response
                .body()
                .as_ref()
                .and_then(|b| serde_json::from_slice(b).ok())
                .unwrap_or(Value::Null);
            Err((status, body))
        }
        Err(e) => panic!("websocket connect failed: {e}"),
    }
}

/// Signs up two users and pairs them.
pub async fn couple(node: &TestNode) -> (User, User) {
    let mina = User::signup(node, "mina").await;
    let joon = User::signup(node, "joon").await;
    pair(&mina, &joon).await;
    (mina, joon)
}

pub async fn pair(a: &User, b: &User) {
    let (status, req) = a
        .post("/api/requests", json!({ "username": b.username }))
        .await;
    assert_eq!(status, StatusCode::CREATED, "request: {req}");
    let id = req["request"]["id"]
        .as_str()
        .expect("a request id")
        .to_owned();
    let (status, couple) = b
        .post(&format!("/api/requests/{id}/accept"), json!({}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "accept: {couple}");
}
