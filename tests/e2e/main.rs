mod capture;
mod cluster;
mod lifecycle;
mod plugin;
mod security;
