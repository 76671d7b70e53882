//! futuretop, the program: YAML task files run as futures on the engine
//! ([`futuretop_engine`], Python's `concurrent.futures` in Rust), every state change an
//! event, and a terminal monitor that shows the futures, the workers' load and the
//! deadlocks they form.
//!
//! This crate is the application: the task-file schema and its validation ([`config`]),
//! the built-in callables ([`builtins`]) and external commands ([`tasks`]), the pool kinds ([`pools`]), the readers of a task file's values ([`schema`]), the run ([`runner`]) and what steers it ([`control`]), the run model every view folds its events into ([`model`]), its
//! events ([`events`]), the deadlock model ([`deadlock`]) and detector ([`detector`]), the headless reporter
//! ([`headless`]), the monitor ([`tui`]) and its preferences ([`prefs`]). A Rust program that only wants
//! `concurrent.futures` depends on `futuretop-engine` alone.

pub mod attach;
pub mod builtins;
pub mod config;
pub mod control;
pub mod critical;
pub mod deadlock;
pub mod demo;
pub mod detector;
pub mod diff;
pub mod events;
pub mod headless;
pub mod keeper;
pub mod model;
pub mod pools;
pub mod prefs;
pub mod runner;
pub mod schema;
pub mod session;
pub mod supervisor;
pub mod tasks;
pub mod text;
pub mod trace;
pub mod tui;
pub mod worker_env;

/// The engine this program runs on.
pub use futuretop_engine as engine;
