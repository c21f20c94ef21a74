//! The texts' source: one Project Fluent file per language (`locales/<tag>/gatehouse.ftl`,
//! compiled into the binary), read into bundles once.
//!
//! A text struct's field is its message formatted once at first use, with each
//! placeholder left for the caller to fill: `{}` for `$value`, `{name}` for `$name`. A
//! message with a number that decides its words (plural rules: "1 minute", "2 хвилини",
//! "5 хвилин") is not a field but a method, [`count`], formatted with the number each
//! time. A message missing from a language is taken from English; the tests make sure
//! none is missing and every language has the same placeholders.

use std::sync::LazyLock;

use fluent_bundle::concurrent::FluentBundle;
use fluent_bundle::{FluentArgs, FluentResource};

/// Every language: its tag, its name in itself (for the switcher), and its messages.
/// The first is the fallback. To add one, add its file and a line here.
pub const LANGUAGES: &[(&str, &str, &str)] = &[
    (
        "en",
        "English",
        include_str!("../../locales/en/gatehouse.ftl"),
    ),
    (
        "uk",
        "Українська",
        include_str!("../../locales/uk/gatehouse.ftl"),
    ),
];

/// The placeholders a text field may leave for its caller (see the module header).
const NAMED: &[&str] = &["site", "time", "ip", "browser", "user", "device"];

static BUNDLES: LazyLock<Vec<FluentBundle<FluentResource>>> = LazyLock::new(|| {
    LANGUAGES
        .iter()
        .map(|(tag, _, source)| {
            let id: unic_langid::LanguageIdentifier =
                tag.parse().expect("a language tag in LANGUAGES is valid");
            let mut bundle = FluentBundle::new_concurrent(vec![id]);
            // Plain text: no Unicode isolation marks around placeholders.
            bundle.set_use_isolating(false);
            let resource =
                FluentResource::try_new(source.to_string()).unwrap_or_else(|(resource, errors)| {
                    tracing::error!(language = tag, ?errors, "syntax errors in a locale file");
                    resource
                });
            if let Err(errors) = bundle.add_resource(resource) {
                tracing::error!(language = tag, ?errors, "a message is defined twice");
            }
            bundle
        })
        .collect()
});

/// The index of `lang` in [`LANGUAGES`] (the fallback's for an unknown tag).
pub fn index_of(lang: &str) -> usize {
    LANGUAGES
        .iter()
        .position(|(tag, _, _)| *tag == lang)
        .unwrap_or(0)
}

/// `prefix` + the field name with `-` for `_`: `passkeys-name-label`.
pub fn message_id(prefix: &str, field: &str) -> String {
    format!("{prefix}{}", field.replace('_', "-"))
}

/// Whether `lang`'s own file has the message (no fallback).
pub fn has_message(lang: &str, id: &str) -> bool {
    BUNDLES[index_of(lang)].has_message(id)
}

/// A message of `lang` (else English's) formatted with `args`; `None` when no language
/// has it.
pub fn format(lang: &str, id: &str, args: &FluentArgs) -> Option<String> {
    [&BUNDLES[index_of(lang)], &BUNDLES[0]]
        .into_iter()
        .find_map(|bundle| {
            let pattern = bundle.get_message(id)?.value()?;
            let mut errors = Vec::new();
            Some(
                bundle
                    .format_pattern(pattern, Some(args), &mut errors)
                    .into_owned(),
            )
        })
}

/// A text field's value (see the module header); the message id itself when no
/// language has it, so that a missing message shows rather than vanishes.
pub fn text(lang: &str, prefix: &str, field: &str) -> &'static str {
    let mut args = FluentArgs::new();
    args.set("value", "{}");
    args.set("count", "{}");
    for name in NAMED {
        args.set(*name, format!("{{{name}}}"));
    }
    let id = message_id(prefix, field);
    let text = format(lang, &id, &args).unwrap_or(id);
    Box::leak(text.into_boxed_str())
}

/// A message with a number in it, in `lang`'s plural form for `count`.
pub fn count(lang: &str, prefix: &str, field: &str, count: u64) -> String {
    let mut args = FluentArgs::new();
    args.set("count", count);
    let id = message_id(prefix, field);
    format(lang, &id, &args).unwrap_or(id)
}

/// Declares a struct of texts whose fields are Fluent messages (each field's message
/// is `prefix` + its name with `-` for `_`), its loader, and its counted messages as
/// methods. Fields before `;` are not messages: each is made by its function from the
/// language tag.
macro_rules! fluent_texts {
    (
        $(#[$meta:meta])*
        pub struct $name:ident in $prefix:literal {
            $($(#[$xmeta:meta])* pub $extra:ident: $xty:ty = $xinit:path,)*
            ;
            $($(#[$fmeta:meta])* $field:ident,)*
        }
        counted {
            $($(#[$cmeta:meta])* $counted:ident,)*
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug)]
        pub struct $name {
            /// The language tag these texts are in.
            pub lang: &'static str,
            $($(#[$xmeta])* pub $extra: $xty,)*
            $($(#[$fmeta])* pub $field: &'static str,)*
        }

        impl $name {
            /// The message id prefix of these texts.
            pub const PREFIX: &'static str = $prefix;
            /// The fields that are messages.
            pub const FIELDS: &'static [&'static str] = &[$(stringify!($field)),*];
            /// The messages with a number in them (methods).
            pub const COUNTED: &'static [&'static str] = &[$(stringify!($counted)),*];

            /// The texts of `lang`, from its Fluent messages.
            pub fn load(lang: &'static str) -> Self {
                $name {
                    lang,
                    $($extra: $xinit(lang),)*
                    $($field: $crate::texts::fluent::text(lang, $prefix, stringify!($field)),)*
                }
            }

            $(
                $(#[$cmeta])*
                pub fn $counted(&self, count: u64) -> String {
                    $crate::texts::fluent::count(self.lang, $prefix, stringify!($counted), count)
                }
            )*
        }
    };
}
pub(crate) use fluent_texts;

/// Every message and counted message of a text struct, for the completeness test.
pub fn ids_of(prefix: &str, fields: &[&str], counted: &[&str]) -> Vec<String> {
    fields
        .iter()
        .chain(counted)
        .map(|f| message_id(prefix, f))
        .collect()
}
