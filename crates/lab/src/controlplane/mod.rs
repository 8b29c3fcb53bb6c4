//! Lab control plane: node podCIDRs, scheduler, Deployment, Service and EndpointSlice controllers.
