//! Choosing where tensors live: a real GPU through wgpu when one is present, else Burn's Flex
//! CPU backend. Software adapters (llvmpipe and the like) are never chosen automatically: on
//! them every small kernel costs milliseconds, far slower than Flex.

use std::fmt;
use std::str::FromStr;

use burn::tensor::{Device, DeviceKind};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeviceChoice {
    #[default]
    Auto,
    Cpu,
    Wgpu,
}

impl FromStr for DeviceChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(DeviceChoice::Auto),
            "cpu" | "flex" => Ok(DeviceChoice::Cpu),
            "wgpu" | "gpu" => Ok(DeviceChoice::Wgpu),
            other => Err(format!("unknown device '{other}' (auto, cpu or wgpu)")),
        }
    }
}

impl fmt::Display for DeviceChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DeviceChoice::Auto => "auto",
            DeviceChoice::Cpu => "cpu",
            DeviceChoice::Wgpu => "wgpu",
        })
    }
}

/// A device with the words that tell the user what it is.
#[derive(Clone, Debug)]
pub struct SelectedDevice {
    pub device: Device,
    pub label: String,
    pub is_gpu: bool,
}

/// What wgpu reports about one adapter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdapterSummary {
    pub name: String,
    pub backend: String,
    pub kind: AdapterKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdapterKind {
    Discrete,
    Integrated,
    Virtual,
    Cpu,
    Other,
}

pub fn adapters() -> Vec<AdapterSummary> {
    let instance = wgpu::Instance::default();
    let Ok(rt) = tokio::runtime::Builder::new_current_thread().build() else {
        return Vec::new();
    };
    rt.block_on(instance.enumerate_adapters(wgpu::Backends::PRIMARY))
        .into_iter()
        .map(|a| {
            let info = a.get_info();
            AdapterSummary {
                name: info.name,
                backend: format!("{:?}", info.backend),
                kind: match info.device_type {
                    wgpu::DeviceType::DiscreteGpu => AdapterKind::Discrete,
                    wgpu::DeviceType::IntegratedGpu => AdapterKind::Integrated,
                    wgpu::DeviceType::VirtualGpu => AdapterKind::Virtual,
                    wgpu::DeviceType::Cpu => AdapterKind::Cpu,
                    wgpu::DeviceType::Other => AdapterKind::Other,
                },
            }
        })
        .collect()
}

/// The best real GPU among `adapters`, as the Burn device kind that addresses it. Pure, so the
/// rule "never a CPU-type adapter" is tested without a GPU.
pub fn pick_gpu(adapters: &[AdapterSummary]) -> Option<(DeviceKind, &AdapterSummary)> {
    for wanted in [
        AdapterKind::Discrete,
        AdapterKind::Integrated,
        AdapterKind::Virtual,
    ] {
        if let Some(a) = adapters.iter().find(|a| a.kind == wanted) {
            let kind = match wanted {
                AdapterKind::Discrete => DeviceKind::DiscreteGpu(0),
                AdapterKind::Integrated => DeviceKind::IntegratedGpu(0),
                _ => DeviceKind::VirtualGpu(0),
            };
            return Some((kind, a));
        }
    }
    None
}

pub fn select(choice: DeviceChoice) -> SelectedDevice {
    let cpu = || SelectedDevice {
        device: Device::flex(),
        label: format!("cpu (burn flex, {} threads)", rayon_threads()),
        is_gpu: false,
    };
    match choice {
        DeviceChoice::Cpu => cpu(),
        DeviceChoice::Auto => {
            let list = adapters();
            match pick_gpu(&list) {
                Some((kind, a)) => SelectedDevice {
                    device: Device::wgpu(kind),
                    label: format!("wgpu: {} ({})", a.name, a.backend),
                    is_gpu: true,
                },
                None => cpu(),
            }
        }
        DeviceChoice::Wgpu => {
            // An explicit request takes any adapter, software ones included (that is how the
            // wgpu path is tested on machines without a GPU).
            let list = adapters();
            let (kind, label) = match pick_gpu(&list) {
                Some((kind, a)) => (kind, format!("wgpu: {} ({})", a.name, a.backend)),
                None => match list.first() {
                    Some(a) => (
                        DeviceKind::DefaultDevice,
                        format!("wgpu: {} ({}, software)", a.name, a.backend),
                    ),
                    None => (DeviceKind::DefaultDevice, "wgpu: no adapter found".into()),
                },
            };
            SelectedDevice {
                is_gpu: pick_gpu(&list).is_some(),
                device: Device::wgpu(kind),
                label,
            }
        }
    }
}

fn rayon_threads() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(name: &str, kind: AdapterKind) -> AdapterSummary {
        AdapterSummary {
            name: name.into(),
            backend: "Vulkan".into(),
            kind,
        }
    }

    #[test]
    fn software_adapters_are_never_picked() {
        assert!(pick_gpu(&[a("llvmpipe", AdapterKind::Cpu)]).is_none());
        assert!(pick_gpu(&[]).is_none());
    }

    #[test]
    fn discrete_beats_integrated() {
        let list = [
            a("llvmpipe", AdapterKind::Cpu),
            a("iGPU", AdapterKind::Integrated),
            a("H100", AdapterKind::Discrete),
        ];
        let (kind, chosen) = pick_gpu(&list).unwrap();
        assert_eq!(kind, DeviceKind::DiscreteGpu(0));
        assert_eq!(chosen.name, "H100");
    }

    #[test]
    fn device_names_parse() {
        assert_eq!("auto".parse::<DeviceChoice>().unwrap(), DeviceChoice::Auto);
        assert!("tpu".parse::<DeviceChoice>().unwrap_err().contains("tpu"));
    }
}
