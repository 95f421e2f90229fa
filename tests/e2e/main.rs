mod capture;
mod cluster;
mod inputs;
mod lifecycle;
mod plugin;
mod security;
mod stages;
