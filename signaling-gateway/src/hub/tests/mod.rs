//! The hub's tests, one file per behaviour; shared helpers in `support`.

mod abuse_is_bounded;
mod chat_routing;
mod connectivity_probe;
mod hands_and_reactions;
mod lobby_admission;
mod lobby_knockers;
mod media_routing;
mod moderation_is_authorized;
mod pad_sync;
mod random_sequences;
mod reconnect_keeps_your_place;
mod session_join_and_leave;
mod support;
mod turn_credentials;
