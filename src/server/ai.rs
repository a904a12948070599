//! OpenAI-compatible chat-completions client for `ai_complete` and AI workflow steps.
