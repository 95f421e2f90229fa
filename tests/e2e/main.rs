mod capture;
mod cluster;
