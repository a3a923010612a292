//! The API's routes, built through one list so the OpenAPI document can be checked
//! against it: every route added here is recorded with its method and path.

use std::sync::Arc;

use axum::Router;
use axum::handler::Handler;
use axum::routing::{any, get, post, put};

use crate::gateway::Gateway;
use crate::policy::Permission;

/// One route as the OpenAPI document must list it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    /// Lower-case method, as OpenAPI writes it.
    pub method: &'static str,
    /// Path in OpenAPI's (and axum's) `{param}` syntax.
    pub path: &'static str,
    /// The permission without which the route answers 404, if any.
    pub permission: Option<Permission>,
}

/// A router being built, with the list of what it serves.
pub struct Api {
    /// The routes.
    pub router: Router<Arc<Gateway>>,
    /// What was added, in order.
    pub listed: Vec<Listed>,
}

impl Api {
    /// No routes yet.
    pub fn new() -> Api {
        Api { router: Router::new(), listed: Vec::new() }
    }

    /// A `GET` route.
    pub fn get<H: Handler<T, Arc<Gateway>>, T: 'static>(self, path: &'static str, handler: H) -> Api {
        self.add("get", path, None, get(handler))
    }

    /// A `POST` route.
    pub fn post<H: Handler<T, Arc<Gateway>>, T: 'static>(self, path: &'static str, handler: H) -> Api {
        self.add("post", path, None, post(handler))
    }

    /// A `GET` route that answers 404 to callers without `permission` (the handler checks it).
    pub fn restricted<H: Handler<T, Arc<Gateway>>, T: 'static>(
        self,
        path: &'static str,
        permission: Permission,
        handler: H,
    ) -> Api {
        self.add("get", path, Some(permission), get(handler))
    }

    /// A `POST` route that answers 404 to callers without `permission` (the handler checks it).
    pub fn restricted_post<H: Handler<T, Arc<Gateway>>, T: 'static>(
        self,
        path: &'static str,
        permission: Permission,
        handler: H,
    ) -> Api {
        self.add("post", path, Some(permission), post(handler))
    }

    /// A `PUT` route that answers 404 to callers without `permission` (the handler checks it).
    pub fn restricted_put<H: Handler<T, Arc<Gateway>>, T: 'static>(
        self,
        path: &'static str,
        permission: Permission,
        handler: H,
    ) -> Api {
        self.add("put", path, Some(permission), put(handler))
    }

    /// A WebSocket route that answers 404 to callers without `permission` (the handler checks it).
    pub fn restricted_websocket<H: Handler<T, Arc<Gateway>>, T: 'static>(
        self,
        path: &'static str,
        permission: Permission,
        handler: H,
    ) -> Api {
        self.add("get", path, Some(permission), any(handler))
    }

    /// A WebSocket route: `GET` upgrades over HTTP/1.1, extended `CONNECT` over HTTP/2;
    /// documented as `get`.
    pub fn websocket<H: Handler<T, Arc<Gateway>>, T: 'static>(self, path: &'static str, handler: H) -> Api {
        self.add("get", path, None, any(handler))
    }

    fn add(
        mut self,
        method: &'static str,
        path: &'static str,
        permission: Option<Permission>,
        route: axum::routing::MethodRouter<Arc<Gateway>>,
    ) -> Api {
        self.router = self.router.route(path, route);
        self.listed.push(Listed { method, path, permission });
        self
    }
}
