mod capture;
mod cluster;
mod http2;
mod inputs;
mod lifecycle;
mod plugin;
mod security;
mod stages;
