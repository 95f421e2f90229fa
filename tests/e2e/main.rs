mod capture;
mod cluster;
mod example;
mod lifecycle;
mod plugin;
mod security;
