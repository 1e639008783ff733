//! The answers every operation of both services can give besides its own, documented once:
//! a client over its rate gets a 429 with `Retry-After`, a request over its time a 503, and
//! a request with a body can also be malformed (400), too large (413) or not JSON (415).

use utoipa::{
    Modify,
    openapi::{
        Content, OpenApi, Ref, RefOr, Response, ResponseBuilder,
        header::Header,
        schema::{ObjectBuilder, Type},
    },
};

/// Adds the shared error answers to every operation of a document that lacks them.
#[derive(Debug, Clone, Copy)]
pub struct CommonResponses;

fn error(description: &str) -> ResponseBuilder {
    Response::builder().description(description).content(
        "application/json",
        Content::new(Some(Ref::from_schema_name("ErrorBody"))),
    )
}

impl Modify for CommonResponses {
    fn modify(&self, openapi: &mut OpenApi) {
        for item in openapi.paths.paths.values_mut() {
            let operations = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ];
            for operation in operations.into_iter().flatten() {
                let mut shared = vec![
                    (
                        "429",
                        error("too many requests, or too much work, from this client")
                            .header(
                                "Retry-After",
                                Header::new(
                                    ObjectBuilder::new()
                                        .schema_type(Type::Integer)
                                        .minimum(Some(1)),
                                ),
                            )
                            .build(),
                    ),
                    (
                        "503",
                        error("the request took too long, or the service cannot serve it now")
                            .build(),
                    ),
                ];
                if operation.request_body.is_some() {
                    shared.extend([
                        ("400", error("the body is not JSON").build()),
                        (
                            "413",
                            error("the body is larger than the service takes").build(),
                        ),
                        (
                            "415",
                            error("the body is not sent as application/json").build(),
                        ),
                    ]);
                }
                for (status, response) in shared {
                    let documented = operation
                        .responses
                        .responses
                        .entry(status.to_owned())
                        .or_insert_with(|| RefOr::T(response.clone()));
                    // An operation's own 429 carries the same header.
                    if let RefOr::T(documented) = documented {
                        for (name, header) in response.headers {
                            documented.headers.entry(name).or_insert(header);
                        }
                    }
                }
            }
        }
    }
}
