//! Service IP and port allocation plus the API server's Service defaults.
//!
//! Every ClusterIP/NodePort/LoadBalancer Service without an IP gets the
//! lowest free address of the service CIDR, never the network address,
//! network+1 (the `kubernetes` Service's), the DNS service IP or the
//! broadcast address — unless a Service asks for exactly that IP. Requested
//! IPs and nodePorts are honoured when free; otherwise the Service is left
//! alone, the reason is logged and recorded in the
//! [`ALLOCATION_ERROR_ANNOTATION`] annotation. NodePort/LoadBalancer ports
//! get nodePorts from 30000-32767. The allocated sets are rebuilt from all
//! Services on every pass (oldest Service wins a contested address), so a
//! restart can never hand out an address twice and deletion frees it.
//! Owns `clusterIP(s)`, `ipFamilies`, `ipFamilyPolicy`, `nodePort`s and
//! defaulted spec fields of Services.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use api::k8s_openapi::{
    api::core::v1::{Service, ServiceSpec},
    apimachinery::pkg::util::intstr::IntOrString,
};
use futures::StreamExt;
use ipnet::Ipv4Net;
use store::Store;

use crate::Error;
use crate::cache::{Cache, Pacer, Pass, feed};
use crate::meta::{creation_order, key_of};

/// Annotation carrying why a Service's requested IP or port was refused.
pub const ALLOCATION_ERROR_ANNOTATION: &str = "lab.cilium.io/allocation-error";

/// The nodePort range (`--service-node-port-range`).
const NODE_PORTS: std::ops::RangeInclusive<i32> = 30000..=32767;

/// Where Service addresses come from.
#[derive(Debug, Clone, Copy)]
pub struct ServiceRanges {
    /// The service CIDR (`10.96.0.0/16`).
    pub cidr: Ipv4Net,
    /// The cluster DNS service IP (`10.96.0.10`), only given on request.
    pub dns: Ipv4Addr,
}

/// One Service to write.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceUpdate {
    /// The Service as it should be stored.
    pub service: Service,
    /// Why a request was refused (also in the annotation).
    pub error: Option<String>,
}

fn service_type(spec: &ServiceSpec) -> &str {
    spec.type_.as_deref().unwrap_or("ClusterIP")
}

fn wants_node_ports(spec: &ServiceSpec) -> bool {
    match service_type(spec) {
        "NodePort" => true,
        "LoadBalancer" => spec.allocate_load_balancer_node_ports != Some(false),
        _ => false,
    }
}

/// The IP the Service asks for: `clusterIP`, else `clusterIPs[0]`.
fn requested_ip(spec: &ServiceSpec) -> Option<&str> {
    spec.cluster_ip
        .as_deref()
        .filter(|ip| !ip.is_empty())
        .or_else(|| spec.cluster_ips.as_ref()?.first().map(String::as_str))
        .filter(|ip| !ip.is_empty())
}

struct Allocator {
    ranges: ServiceRanges,
    ips: BTreeSet<Ipv4Addr>,
    ports: BTreeSet<i32>,
    next_ip: u32,
    next_port: i32,
}

impl Allocator {
    fn new(ranges: ServiceRanges) -> Self {
        Self {
            ranges,
            ips: BTreeSet::new(),
            ports: BTreeSet::new(),
            next_ip: u32::from(ranges.cidr.network()),
            next_port: *NODE_PORTS.start(),
        }
    }

    fn claim_ip(&mut self, requested: &str) -> Result<Ipv4Addr, String> {
        let cidr = self.ranges.cidr;
        let ip: Ipv4Addr = requested.parse().map_err(|_| {
            format!("spec.clusterIP: Invalid value: \"{requested}\": must be an IPv4 address")
        })?;
        if !cidr.contains(&ip) || ip == cidr.network() || ip == cidr.broadcast() {
            return Err(format!(
                "spec.clusterIP: Invalid value: \"{requested}\": provided IP is not in the valid range. The range of valid IPs is {cidr}"
            ));
        }
        if !self.ips.insert(ip) {
            return Err(format!(
                "spec.clusterIP: Invalid value: \"{requested}\": provided IP is already allocated"
            ));
        }
        Ok(ip)
    }

    fn allocate_ip(&mut self) -> Option<Ipv4Addr> {
        let cidr = self.ranges.cidr;
        let reserved = [
            cidr.network(),
            Ipv4Addr::from(u32::from(cidr.network()).saturating_add(1)),
            self.ranges.dns,
            cidr.broadcast(),
        ];
        while self.next_ip <= u32::from(cidr.broadcast()) {
            let ip = Ipv4Addr::from(self.next_ip);
            self.next_ip += 1;
            if !reserved.contains(&ip) && !self.ips.contains(&ip) {
                self.ips.insert(ip);
                return Some(ip);
            }
        }
        None
    }

    fn claim_port(&mut self, index: usize, port: i32) -> Result<(), String> {
        if !NODE_PORTS.contains(&port) {
            return Err(format!(
                "spec.ports[{index}].nodePort: Invalid value: {port}: provided port is not in the valid range. The range of valid ports is 30000-32767"
            ));
        }
        if !self.ports.insert(port) {
            return Err(format!(
                "spec.ports[{index}].nodePort: Invalid value: {port}: provided port is already allocated"
            ));
        }
        Ok(())
    }

    fn allocate_port(&mut self) -> Option<i32> {
        while NODE_PORTS.contains(&self.next_port) {
            let port = self.next_port;
            self.next_port += 1;
            if self.ports.insert(port) {
                return Some(port);
            }
        }
        None
    }

    /// Claim the cluster IP and the nodePorts a Service asks for; why any
    /// was refused.
    fn claim_requested(&mut self, svc: &Service) -> Option<String> {
        let spec = svc.spec.as_ref()?;
        if service_type(spec) == "ExternalName" {
            return None;
        }
        let mut errs = Vec::new();
        if let Some(ip) = requested_ip(spec).filter(|ip| *ip != "None")
            && let Err(e) = self.claim_ip(ip)
        {
            errs.push(e);
        }
        if wants_node_ports(spec) {
            for (i, p) in spec.ports.iter().flatten().enumerate() {
                if let Some(np) = p.node_port.filter(|np| *np != 0)
                    && let Err(e) = self.claim_port(i, np)
                {
                    errs.push(e);
                }
            }
        }
        (!errs.is_empty()).then(|| errs.join("; "))
    }

    /// Give `spec` its cluster IP (the requested one, else the lowest free
    /// address) and a nodePort to each port that needs one and has none;
    /// the last allocation that found nothing free.
    fn allocate(&mut self, spec: &mut ServiceSpec) -> Option<String> {
        let mut error = None;
        let ip = match requested_ip(spec) {
            Some(ip) => Some(ip.to_string()),
            None => self.allocate_ip().map(|ip| ip.to_string()),
        };
        match ip {
            Some(ip) => {
                spec.cluster_ip = Some(ip.clone());
                spec.cluster_ips = Some(vec![ip]);
            }
            None => {
                error = Some(format!(
                    "no free IP left in the service CIDR {}",
                    self.ranges.cidr
                ))
            }
        }
        if wants_node_ports(spec) {
            for port in spec.ports.iter_mut().flatten() {
                if port.node_port.is_none_or(|np| np == 0) {
                    match self.allocate_port() {
                        Some(np) => port.node_port = Some(np),
                        None => error = Some("no free nodePort left in 30000-32767".into()),
                    }
                }
            }
        }
        error
    }
}

/// Fill in the API server's defaults (type, protocols, targetPorts,
/// affinity, traffic policies, IP families).
fn apply_defaults(spec: &mut ServiceSpec) {
    let ty = service_type(spec).to_string();
    spec.type_ = Some(ty.clone());
    spec.session_affinity.get_or_insert_with(|| "None".into());
    for port in spec.ports.iter_mut().flatten() {
        port.protocol.get_or_insert_with(|| "TCP".into());
        port.target_port.get_or_insert(IntOrString::Int(port.port));
    }
    if ty == "ExternalName" {
        return;
    }
    spec.internal_traffic_policy
        .get_or_insert_with(|| "Cluster".into());
    if ty == "NodePort" || ty == "LoadBalancer" {
        spec.external_traffic_policy
            .get_or_insert_with(|| "Cluster".into());
    }
    spec.ip_families.get_or_insert_with(|| vec!["IPv4".into()]);
    spec.ip_family_policy
        .get_or_insert_with(|| "SingleStack".into());
}

/// Decide the Services that must be written: allocations, defaults, and
/// error annotations. Pure; the allocated sets are rebuilt from `services`.
pub fn plan_services(services: &[&Service], ranges: ServiceRanges) -> Vec<ServiceUpdate> {
    let mut ordered: Vec<&Service> = services.to_vec();
    ordered.sort_by(|a, b| creation_order(&a.metadata).cmp(&creation_order(&b.metadata)));
    let mut alloc = Allocator::new(ranges);
    // 1. Claims of explicit IPs and nodePorts, oldest Service first.
    let errors: Vec<Option<String>> = ordered
        .iter()
        .map(|svc| alloc.claim_requested(svc))
        .collect();
    // 2. Allocations for the rest; 3. the Service as it should be.
    ordered
        .iter()
        .zip(errors)
        .filter_map(|(svc, error)| desired_service(svc, error, &mut alloc))
        .collect()
}

/// The update of one Service, if it changes: defaults and allocations
/// applied and the error annotation cleared, or, when a request was
/// refused (`error`, from the claims or from allocating), the spec left
/// as its author wrote it and the reason annotated.
fn desired_service(
    svc: &Service,
    mut error: Option<String>,
    alloc: &mut Allocator,
) -> Option<ServiceUpdate> {
    let mut spec = svc.spec.clone().unwrap_or_default();
    if error.is_none() {
        apply_defaults(&mut spec);
        if service_type(&spec) != "ExternalName" {
            error = alloc.allocate(&mut spec);
        }
    }
    let mut desired = svc.clone();
    match &error {
        Some(e) => {
            desired
                .metadata
                .annotations
                .get_or_insert_default()
                .insert(ALLOCATION_ERROR_ANNOTATION.into(), e.clone());
        }
        None => {
            desired.spec = Some(spec);
            if let Some(a) = desired.metadata.annotations.as_mut() {
                a.remove(ALLOCATION_ERROR_ANNOTATION);
            }
        }
    }
    (desired != *svc).then_some(ServiceUpdate {
        service: desired,
        error,
    })
}

/// Controller loop: watches Services, allocates and defaults them.
pub async fn run(store: Store, ranges: ServiceRanges) -> Result<(), Error> {
    let mut services = Cache::<Service>::default();
    let mut svc_rx = store.reflect::<Service>(None);
    let mut pacer = Pacer::default();
    loop {
        tokio::select! {
            change = svc_rx.next() => feed(&mut services, change, &mut pacer)?,
            () = pacer.due(), if services.synced() => {
                let mut pass = Pass::new("services");
                let view: Vec<&Service> = services.values().collect();
                let updates = plan_services(&view, ranges);
                for ServiceUpdate { service, error } in updates {
                    let key = key_of(&service.metadata);
                    if let Some(written) = pass.check("allocate", &key, store.update(&service).await) {
                        let spec = written.spec.as_ref();
                        match &error {
                            Some(e) => tracing::error!(service = key, error = e.as_str(), "service request refused; left unallocated"),
                            None => tracing::info!(
                                service = key,
                                cluster_ip = spec.and_then(|s| s.cluster_ip.as_deref()).unwrap_or(""),
                                "service allocated"
                            ),
                        }
                        services.written(written);
                    }
                }
                pacer.finished(pass.ok());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use api::k8s_openapi::{apimachinery::pkg::apis::meta::v1::Time, jiff::Timestamp};

    use super::*;

    fn ranges() -> ServiceRanges {
        ServiceRanges {
            cidr: "10.96.0.0/16".parse().unwrap(),
            dns: Ipv4Addr::new(10, 96, 0, 10),
        }
    }

    fn svc(name: &str, created: i64, ty: &str, ip: Option<&str>) -> Service {
        let mut s: Service = serde_json::from_value(serde_json::json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"type": ty, "selector": {"app": name},
                     "ports": [{"port": 80, "targetPort": 8080}, {"name": "dns", "port": 53, "protocol": "UDP"}]}
        }))
        .unwrap();
        s.metadata.creation_timestamp = Some(Time(Timestamp::from_second(created).unwrap()));
        s.spec.as_mut().unwrap().cluster_ip = ip.map(Into::into);
        s
    }

    /// Apply updates to the set, like the store would.
    fn apply(services: &mut [Service], updates: Vec<ServiceUpdate>) {
        for u in updates {
            let slot = services
                .iter_mut()
                .find(|s| s.metadata.name == u.service.metadata.name)
                .unwrap();
            *slot = u.service;
        }
    }

    fn ip_of(s: &Service) -> Option<&str> {
        s.spec.as_ref()?.cluster_ip.as_deref()
    }

    fn node_ports(s: &Service) -> Vec<Option<i32>> {
        s.spec
            .as_ref()
            .unwrap()
            .ports
            .iter()
            .flatten()
            .map(|p| p.node_port)
            .collect()
    }

    fn error_of(s: &Service) -> Option<&str> {
        s.metadata
            .annotations
            .as_ref()?
            .get(ALLOCATION_ERROR_ANNOTATION)
            .map(String::as_str)
    }

    fn plan(services: &[Service]) -> Vec<ServiceUpdate> {
        let view: Vec<&Service> = services.iter().collect();
        plan_services(&view, ranges())
    }

    #[test]
    fn allocates_skipping_reserved_addresses_and_sets_defaults() {
        let mut services: Vec<Service> = (0..12)
            .map(|i| svc(&format!("s{i:02}"), i, "ClusterIP", None))
            .collect();
        let updates = plan(&services);
        assert_eq!(updates.len(), 12);
        apply(&mut services, updates);
        let ips: Vec<&str> = services.iter().map(|s| ip_of(s).unwrap()).collect();
        assert_eq!(ips[0], "10.96.0.2");
        assert!(
            !ips.contains(&"10.96.0.10")
                && !ips.contains(&"10.96.0.1")
                && !ips.contains(&"10.96.0.0")
        );
        assert_eq!(ips.iter().collect::<HashSet<_>>().len(), 12);
        let spec = services[0].spec.as_ref().unwrap();
        assert_eq!(
            spec.cluster_ips.as_deref(),
            Some(&["10.96.0.2".to_string()][..])
        );
        assert_eq!(spec.ip_families.as_deref(), Some(&["IPv4".to_string()][..]));
        assert_eq!(spec.ip_family_policy.as_deref(), Some("SingleStack"));
        assert_eq!(spec.session_affinity.as_deref(), Some("None"));
        assert_eq!(spec.internal_traffic_policy.as_deref(), Some("Cluster"));
        let ports = spec.ports.as_ref().unwrap();
        assert_eq!(ports[1].protocol.as_deref(), Some("UDP"));
        assert_eq!(ports[1].target_port, Some(IntOrString::Int(53)));
        assert!(ports.iter().all(|p| p.node_port.is_none()));
        // Rebuilt from the store ("restart"): nothing changes, nothing is reused.
        assert!(plan(&services).is_empty());
        services.push(svc("late", 100, "ClusterIP", None));
        let updates = plan(&services);
        apply(&mut services, updates);
        assert_eq!(ip_of(services.last().unwrap()), Some("10.96.0.15"));
    }

    #[test]
    fn requested_ips_are_honoured_when_free_and_refused_otherwise() {
        let mut services = vec![
            svc("a", 1, "ClusterIP", None),
            svc("kube-dns", 2, "ClusterIP", Some("10.96.0.10")),
            svc("kubernetes", 3, "ClusterIP", Some("10.96.0.1")),
            svc("thief", 4, "ClusterIP", Some("10.96.0.10")),
            svc("outside", 5, "ClusterIP", Some("10.0.0.1")),
            svc("asks-for-2", 0, "ClusterIP", Some("10.96.0.2")),
        ];
        let updates = plan(&services);
        apply(&mut services, updates);
        let by_name = |n: &str| {
            services
                .iter()
                .find(|s| s.metadata.name.as_deref() == Some(n))
                .unwrap()
        };
        assert_eq!(ip_of(by_name("kube-dns")), Some("10.96.0.10"));
        assert_eq!(error_of(by_name("kube-dns")), None);
        assert_eq!(ip_of(by_name("kubernetes")), Some("10.96.0.1"));
        assert_eq!(ip_of(by_name("asks-for-2")), Some("10.96.0.2"));
        assert_eq!(
            ip_of(by_name("a")),
            Some("10.96.0.3"),
            "explicit claims are served first"
        );
        assert!(
            error_of(by_name("thief"))
                .unwrap()
                .contains("already allocated")
        );
        assert!(
            by_name("thief")
                .spec
                .as_ref()
                .unwrap()
                .ip_families
                .is_none(),
            "refused service left alone"
        );
        assert!(
            error_of(by_name("outside"))
                .unwrap()
                .contains("not in the valid range")
        );
        assert!(plan(&services).is_empty(), "stable after the first pass");

        // The owner goes away: the thief gets it and its error is cleared.
        services.retain(|s| s.metadata.name.as_deref() != Some("kube-dns"));
        let updates = plan(&services);
        apply(&mut services, updates);
        let thief = services
            .iter()
            .find(|s| s.metadata.name.as_deref() == Some("thief"))
            .unwrap();
        assert_eq!(error_of(thief), None);
        assert_eq!(
            thief.spec.as_ref().unwrap().ip_families.as_deref(),
            Some(&["IPv4".to_string()][..])
        );
    }

    #[test]
    fn headless_external_name_and_node_ports() {
        let mut headless = svc("headless", 1, "ClusterIP", Some("None"));
        headless.spec.as_mut().unwrap().cluster_ips = None;
        let mut ext = svc("ext", 2, "ExternalName", None);
        ext.spec.as_mut().unwrap().external_name = Some("example.com".into());
        let np = svc("np", 3, "NodePort", None);
        let mut fixed = svc("fixed", 0, "NodePort", None);
        fixed.spec.as_mut().unwrap().ports.as_mut().unwrap()[0].node_port = Some(30001);
        let mut clash = svc("clash", 4, "LoadBalancer", None);
        clash.spec.as_mut().unwrap().ports.as_mut().unwrap()[0].node_port = Some(30001);
        let mut services = vec![headless, ext, np, fixed, clash];
        let updates = plan(&services);
        apply(&mut services, updates);

        let spec = services[0].spec.as_ref().unwrap();
        assert_eq!(spec.cluster_ips.as_deref(), Some(&["None".to_string()][..]));
        let spec = services[1].spec.as_ref().unwrap();
        assert_eq!(
            (spec.cluster_ip.as_deref(), spec.ip_families.as_ref()),
            (None, None)
        );
        assert_eq!(node_ports(&services[2]), [Some(30002), Some(30003)]);
        assert_eq!(
            ip_of(&services[2]),
            Some("10.96.0.3"),
            "NodePort services get a cluster IP too"
        );
        assert_eq!(node_ports(&services[3]), [Some(30001), Some(30000)]);
        assert!(
            error_of(&services[4])
                .unwrap()
                .contains("spec.ports[0].nodePort")
        );
        assert!(plan(&services).is_empty());
    }

    #[test]
    fn exhaustion_is_reported() {
        let tiny = ServiceRanges {
            cidr: "10.96.0.0/29".parse().unwrap(),
            dns: Ipv4Addr::new(10, 96, 0, 6),
        };
        // Allocatable: .2 .3 .4 .5 (.0, .1, .6 dns and .7 broadcast reserved).
        let services: Vec<Service> = (0..5)
            .map(|i| svc(&format!("s{i}"), i, "ClusterIP", None))
            .collect();
        let view: Vec<&Service> = services.iter().collect();
        let updates = plan_services(&view, tiny);
        let errors: Vec<_> = updates.iter().filter(|u| u.error.is_some()).collect();
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].service.metadata.name.as_deref(), Some("s4"));
    }
}
