mod capture;
mod cluster;
mod plugin;
