//! The lifetime meter: energy since the first data point, extended incrementally.
//! Placeholder: implemented with the energy core.
