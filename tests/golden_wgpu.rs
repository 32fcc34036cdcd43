//! The core of the reference checks on the wgpu device. Without a GPU this runs on a software
//! Vulkan adapter (Mesa llvmpipe), which is slow, so it checks two prompts and a short greedy
//! continuation; the CPU test covers the rest.

mod common;
mod golden;

use seedforge::llm::device::{self, DeviceChoice};

#[test]
fn logits_and_greedy_match_reference_on_wgpu() {
    let selected = device::select(DeviceChoice::Wgpu);
    eprintln!("wgpu device: {}", selected.label);
    assert!(
        !selected.label.contains("no adapter"),
        "no wgpu adapter: install a Vulkan driver (apt-get install mesa-vulkan-drivers)"
    );
    golden::check_model(&selected.device, golden::Depth::Core);
}
