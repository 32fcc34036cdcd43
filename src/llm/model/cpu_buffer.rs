//! A tensor's buffer on the CPU backend, for the steps of a layer taken in place on it
//! (the MLP's gate, prompt attention) where Burn's own operations are scalar or single-threaded.

use burn::tensor::{DType, Device, Tensor, TensorData};
use burn_autodiff::Autodiff;
use burn_autodiff::checkpoint::strategy::NoCheckpointing;
use burn_backend::ops::FloatTensorOps;
use burn_flex::{Flex, FlexDevice, FlexTensor};

/// The CPU backend under autodiff, as training runs it: the backend that the operations with
/// their own backward pass (`gate`) are written against.
pub type Trained = Autodiff<Flex, NoCheckpointing>;

/// Whether `t` is an f32 tensor of the plain CPU backend (not autodiff, not wgpu): the only
/// kind whose buffer [`buffer`] hands out.
pub fn on_plain_cpu<const D: usize>(t: &Tensor<D>) -> bool {
    let device = t.device();
    !device.is_autodiff() && device.inner() == Device::flex() && t.dtype() == DType::F32
}

/// Whether `t` is an f32 tensor of the autodiff device over the CPU backend ([`Trained`]).
pub fn trained_on_cpu<const D: usize>(t: &Tensor<D>) -> bool {
    let device = t.device();
    device.is_autodiff() && device.inner() == Device::flex() && t.dtype() == DType::F32
}

/// `t`'s CPU tensor, its buffer holding exactly its elements in order (copied when it is a view).
/// Only for tensors [`on_plain_cpu`] accepts.
pub fn buffer<const D: usize>(t: Tensor<D>) -> FlexTensor {
    whole(
        t.try_into_primitive::<Flex>()
            .unwrap_or_else(|e| unreachable!("checked to be on the CPU backend: {e:?}")),
    )
}

/// `f` with a buffer holding exactly its elements in order (copied when it is a view).
pub fn whole(f: FlexTensor) -> FlexTensor {
    let l = f.layout();
    let whole = l.is_contiguous()
        && l.start_offset() == 0
        && f.bytes().len() == l.num_elements() * std::mem::size_of::<f32>();
    if whole { f } else { f.to_contiguous() }
}

/// A CPU tensor of `like`'s shape holding `data`.
pub fn new_like(like: &FlexTensor, data: Vec<f32>) -> FlexTensor {
    Flex::float_from_data(
        TensorData::new(data, like.layout().shape().clone()),
        &FlexDevice,
    )
}

/// The elements of a tensor [`buffer`] returned.
pub fn values(f: &FlexTensor) -> &[f32] {
    f.storage::<f32>()
}

/// The elements of a tensor [`buffer`] returned, to write in place (copied first if the buffer
/// is shared with another tensor).
pub fn values_mut(f: &mut FlexTensor) -> &mut [f32] {
    f.storage_mut::<f32>()
}

/// A CPU tensor back as a tensor of the model.
pub fn tensor<const D: usize>(f: FlexTensor) -> Tensor<D> {
    Tensor::from_primitive::<Flex>(f)
}
