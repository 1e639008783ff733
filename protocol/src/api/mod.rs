//! The services' HTTP request and response bodies, shared by the servers and their clients
//! (the phone's wallet among them), so that neither side writes the JSON by hand. With the
//! `openapi` feature each type also describes itself for the services' OpenAPI documents.

pub mod relayer;
