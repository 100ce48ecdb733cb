//! zsets commands.
