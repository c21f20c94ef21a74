//! The portal's page templates (askama, compiled in from `assets/templates/`).

use askama::Template;

use crate::portal::i18n::Texts;

#[derive(Template)]
#[template(path = "login.html")]
pub struct LoginPage<'a> {
    pub t: &'static Texts,
    pub title: &'a str,
    pub mount: &'a str,
    pub csrf: &'a str,
    pub rd: &'a str,
    pub username: &'a str,
    pub remember_me: bool,
    pub error: Option<String>,
    pub info: Option<&'a str>,
}

#[derive(Template)]
#[template(path = "signed_in.html")]
pub struct SignedInPage<'a> {
    pub t: &'static Texts,
    pub title: &'a str,
    pub mount: &'a str,
    pub csrf: &'a str,
    pub name: &'a str,
    pub username: &'a str,
    pub continue_to: Option<&'a str>,
}

#[derive(Template)]
#[template(path = "message.html")]
pub struct MessagePage<'a> {
    pub t: &'static Texts,
    pub title: &'a str,
    pub mount: &'a str,
    pub text: &'a str,
}

/// Renders a template; a rendering failure becomes a plain error line.
pub fn render(template: &impl Template) -> String {
    template.render().unwrap_or_else(|e| {
        tracing::error!(error = %e, "template rendering failed");
        "Something went wrong on our side.".to_string()
    })
}
