mod capture;
mod cluster;
mod example;
mod inputs;
mod lifecycle;
mod plugin;
mod security;
mod stages;
