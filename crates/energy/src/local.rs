//! Local days and months in HA's time zone. Placeholder: implemented with the energy core.
