//! What the UI (or a headless command) asks the engine to do.

use crate::data::item::ItemId;
use crate::pipeline::filters::FilterSettings;
use crate::pipeline::generate::GenerateSettings;

#[derive(Debug, Clone)]
pub enum Command {
    /// Write new examples for every class, filter them as they stream in, journal everything.
    Generate {
        settings: GenerateSettings,
        filters: FilterSettings,
    },
    /// Run the filters again on these items (after an edit or relabel).
    Recheck {
        items: Vec<ItemId>,
        filters: FilterSettings,
    },
    /// Stop the worker once the current job is done.
    Shutdown,
}
