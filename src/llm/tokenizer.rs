//! Text ↔ token ids with the `tokenizers` crate, built from GGUF metadata (byte-level BPE vocab
//! and merges, the pre-tokenizer `tokenizer.ggml.pre` names, control tokens, BOS handling) or
//! from a Hugging Face `tokenizer.json`, plus the model's chat template.

use std::path::Path;

use tokenizers::decoders::DecoderWrapper;
use tokenizers::decoders::byte_fallback::ByteFallback;
use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::decoders::fuse::Fuse;
use tokenizers::decoders::sequence::Sequence as DecoderSequence;
use tokenizers::models::bpe::BPE;
use tokenizers::normalizers::replace::Replace as DecoderReplace;
use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::{AddedToken, SplitDelimiterBehavior, Tokenizer};

use crate::llm::chat::{ChatMessage, ChatTemplate};
use crate::llm::gguf::GgufFile;

#[derive(Debug, thiserror::Error)]
pub enum TokenizerError {
    #[error("{file}: {message}")]
    Build { file: String, message: String },
    #[error("tokenizer: {0}")]
    Run(String),
    #[error("{0}")]
    Chat(String),
}

/// GGUF `token_type` of control tokens (`<|im_start|>` and the like).
const TOKEN_TYPE_CONTROL: i64 = 3;
/// GGUF `token_type` of user-defined added tokens.
const TOKEN_TYPE_USER_DEFINED: i64 = 4;

/// Pre-tokenizer regexes of the `tokenizer.ggml.pre` values we know, as llama.cpp defines them.
const LLAMA3_REGEX: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const QWEN2_REGEX: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// The `pre` of [`BpeParts`] that says the parts are a SentencePiece vocabulary (`▁` for
/// spaces, byte fallback), not byte-level BPE.
const SENTENCEPIECE: &str = "sentencepiece";

/// A SentencePiece vocabulary's merges, as transformers derives them for its fast tokenizer
/// (`generate_merges`): every split of a piece into two pieces of the vocabulary is a merge,
/// ranked by the whole piece's score (highest first, then the longer left part, then the longer
/// right part), pieces in vocabulary order where those tie, and a piece's splits in the order
/// of their parts' ids.
pub fn merges_by_score(tokens: &[String], scores: &[f32]) -> Vec<(String, String)> {
    let ids: std::collections::HashMap<&str, usize> = tokens
        .iter()
        .enumerate()
        .map(|(i, t)| (t.as_str(), i))
        .collect();
    // A piece may hold a space itself, so a pair is not written as GGUF's "l r".
    struct Ranked {
        score: f32,
        left_chars: usize,
        right_chars: usize,
        order: usize,
        pair: (String, String),
    }
    let mut merges: Vec<Ranked> = Vec::new();
    for (piece, &score) in tokens.iter().zip(scores) {
        let mut local: Vec<(usize, usize, usize, usize, &str, &str)> = Vec::new();
        for (at, _) in piece.char_indices().skip(1) {
            let (l, r) = piece.split_at(at);
            if let (Some(&a), Some(&b)) = (ids.get(l), ids.get(r)) {
                local.push((a, b, l.chars().count(), r.chars().count(), l, r));
            }
        }
        local.sort_by_key(|m| (m.0, m.1));
        for (_, _, nl, nr, l, r) in local {
            let order = merges.len();
            merges.push(Ranked {
                score,
                left_chars: nl,
                right_chars: nr,
                order,
                pair: (l.to_string(), r.to_string()),
            });
        }
    }
    merges.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then(b.left_chars.cmp(&a.left_chars))
            .then(b.right_chars.cmp(&a.right_chars))
            .then(a.order.cmp(&b.order))
    });
    merges.into_iter().map(|m| m.pair).collect()
}

/// GGUF's `"a b"` merges as pairs.
fn parse_merges(merges: &[String]) -> Result<Vec<(String, String)>, String> {
    merges
        .iter()
        .enumerate()
        .map(|(i, m)| {
            m.split_once(' ')
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .ok_or_else(|| format!("merge {i} ({m:?}) has no space"))
        })
        .collect()
}

/// What a byte-level BPE tokenizer is made of, as GGUF metadata stores it.
#[derive(Debug, Clone, Default)]
pub struct BpeParts {
    pub tokens: Vec<String>,
    /// Pairs to merge, highest priority first.
    pub merges: Vec<(String, String)>,
    /// GGUF token types (1 normal, 3 control, 4 user-defined).
    pub token_types: Vec<i64>,
    /// The `tokenizer.ggml.pre` name of the pre-tokenizer.
    pub pre: String,
    pub bos: Option<u32>,
    pub eos: Option<u32>,
    pub pad: Option<u32>,
    pub add_bos: bool,
    pub chat_template: Option<String>,
}

pub struct TextTokenizer {
    /// Recognises special tokens written in the text, as Hugging Face tokenizers do.
    with_special: Tokenizer,
    /// Treats everything as plain text (for user-supplied content that must not inject
    /// control tokens).
    plain: Tokenizer,
    bos: Option<u32>,
    eos: Option<u32>,
    pad: Option<u32>,
    add_bos: bool,
    special_ids: Vec<u32>,
    chat: Option<ChatTemplate>,
    /// Human-readable description, e.g. "byte-level BPE (gguf, pre=smollm), 49152 tokens".
    pub kind: String,
}

impl std::fmt::Debug for TextTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TextTokenizer")
            .field("kind", &self.kind)
            .finish()
    }
}

impl TextTokenizer {
    pub fn from_gguf(file: &GgufFile) -> Result<Self, TokenizerError> {
        let path = file.path().display().to_string();
        let err = |message: String| TokenizerError::Build {
            file: path.clone(),
            message,
        };
        let model = file
            .get_str("tokenizer.ggml.model")
            .map_err(|e| err(e.to_string()))?;
        if model != "gpt2" && model != "llama" {
            return Err(err(format!(
                "tokenizer.ggml.model is '{model}'; seedforge reads byte-level BPE ('gpt2') and \
                 SentencePiece ('llama') tokenizers from GGUF. For other tokenizers, pass a \
                 Hugging Face folder with tokenizer.json"
            )));
        }
        let tokens: Vec<String> = file
            .get_str_array("tokenizer.ggml.tokens")
            .map_err(|e| err(e.to_string()))?
            .to_vec();
        let merges = if model == "llama" {
            // A SentencePiece vocabulary ranks pieces by score instead of listing merges.
            let scores = file
                .get_f32_array("tokenizer.ggml.scores")
                .map_err(|e| err(e.to_string()))?;
            if scores.len() != tokens.len() {
                return Err(err(format!(
                    "{} scores for {} tokens",
                    scores.len(),
                    tokens.len()
                )));
            }
            if file
                .get_bool("tokenizer.ggml.add_space_prefix")
                .unwrap_or(true)
            {
                return Err(err(
                    "SentencePiece tokenizers that add a space before the text (Llama 2's) are \
                     not supported yet; Gemma's (add_space_prefix false) are"
                        .into(),
                ));
            }
            merges_by_score(&tokens, scores)
        } else {
            let merges = file
                .get_str_array("tokenizer.ggml.merges")
                .map_err(|e| err(e.to_string()))?;
            parse_merges(merges).map_err(err)?
        };
        let token_types = match file.get("tokenizer.ggml.token_type") {
            Some(_) => file
                .get_i32_array("tokenizer.ggml.token_type")
                .map_err(|e| err(e.to_string()))?
                .iter()
                .map(|&t| t as i64)
                .collect(),
            None => vec![1; tokens.len()],
        };
        let id = |key: &str| file.get_u64(key).ok().map(|v| v as u32);
        let parts = BpeParts {
            tokens,
            merges,
            token_types,
            pre: if model == "llama" {
                SENTENCEPIECE.into()
            } else {
                file.get_str("tokenizer.ggml.pre")
                    .map(str::to_string)
                    .unwrap_or_else(|_| "default".into())
            },
            bos: id("tokenizer.ggml.bos_token_id"),
            eos: id("tokenizer.ggml.eos_token_id"),
            pad: id("tokenizer.ggml.padding_token_id"),
            add_bos: file
                .get_bool("tokenizer.ggml.add_bos_token")
                .unwrap_or(false),
            chat_template: file
                .get_str("tokenizer.chat_template")
                .ok()
                .map(str::to_string),
        };
        Self::from_bpe_parts(parts).map_err(err)
    }

    /// A byte-level BPE tokenizer from its vocabulary, merges and special-token facts (what a
    /// GGUF file stores).
    pub fn from_bpe_parts(parts: BpeParts) -> Result<Self, String> {
        let vocab: tokenizers::models::bpe::Vocab = parts
            .tokens
            .iter()
            .enumerate()
            .map(|(i, t)| (t.clone(), i as u32))
            .collect();
        let merges = parts.merges;
        let spm = parts.pre == SENTENCEPIECE;
        let mut builder = BPE::builder().vocab_and_merges(vocab, merges);
        if spm {
            // Characters outside the vocabulary become their UTF-8 bytes' `<0xNN>` pieces.
            builder = builder.byte_fallback(true);
            if let Some(unk) = parts.tokens.iter().find(|t| t.as_str() == "<unk>") {
                builder = builder.unk_token(unk.clone());
            }
        }
        let bpe = builder
            .build()
            .map_err(|e| format!("cannot build BPE: {e}"))?;

        let mut tk = Tokenizer::new(bpe);
        if spm {
            // As transformers converts Gemma's SentencePiece model: spaces are `▁`, the text is
            // one piece, and decoding turns `▁` back and fuses the byte pieces.
            tk.with_normalizer(Some(
                tokenizers::normalizers::Replace::new(" ", "\u{2581}")
                    .map_err(|e| format!("cannot build the normalizer: {e}"))?,
            ));
            tk.with_decoder(Some(DecoderWrapper::Sequence(DecoderSequence::new(vec![
                DecoderWrapper::Replace(
                    DecoderReplace::new("\u{2581}", " ")
                        .map_err(|e| format!("cannot build the decoder: {e}"))?,
                ),
                DecoderWrapper::ByteFallback(ByteFallback::new()),
                DecoderWrapper::Fuse(Fuse::new()),
            ]))));
        } else {
            tk.with_pre_tokenizer(Some(pre_tokenizer(&parts.pre)?));
            tk.with_decoder(Some(ByteLevelDecoder::default()));
        }
        let mut added = Vec::new();
        let mut special_ids = Vec::new();
        for (i, (tok, ty)) in parts.tokens.iter().zip(&parts.token_types).enumerate() {
            if *ty == TOKEN_TYPE_CONTROL || *ty == TOKEN_TYPE_USER_DEFINED {
                let special = *ty == TOKEN_TYPE_CONTROL;
                if special {
                    special_ids.push(i as u32);
                }
                added.push(AddedToken::from(tok.clone(), special).normalized(false));
            }
        }
        tk.add_special_tokens(&added);
        let kind = if spm {
            format!("SentencePiece BPE, {} tokens", parts.tokens.len())
        } else {
            format!(
                "byte-level BPE (pre={}), {} tokens",
                parts.pre,
                parts.tokens.len()
            )
        };
        Ok(Self::assemble(
            tk,
            parts.bos,
            parts.eos,
            parts.pad,
            parts.add_bos,
            special_ids,
            parts.chat_template.map(ChatTemplate::new),
            kind,
        ))
    }

    /// From a Hugging Face folder: `tokenizer.json`, with BOS/EOS and the chat template from
    /// `tokenizer_config.json` when present.
    pub fn from_hf_dir(dir: &Path) -> Result<Self, TokenizerError> {
        let json = dir.join("tokenizer.json");
        let tk = Tokenizer::from_file(&json).map_err(|e| TokenizerError::Build {
            file: json.display().to_string(),
            message: e.to_string(),
        })?;
        let cfg_path = dir.join("tokenizer_config.json");
        let cfg: serde_json::Value = std::fs::read_to_string(&cfg_path)
            .ok()
            .and_then(|s| serde_json::from_str(&s).ok())
            .unwrap_or(serde_json::Value::Null);
        let token_id = |key: &str| -> Option<u32> {
            let v = cfg.get(key)?;
            let s = v
                .as_str()
                .or_else(|| v.get("content").and_then(|c| c.as_str()))?;
            tk.token_to_id(s)
        };
        let special_ids = tk
            .get_added_tokens_decoder()
            .iter()
            .filter(|(_, t)| t.special)
            .map(|(id, _)| *id)
            .collect();
        let add_bos = cfg
            .get("add_bos_token")
            .and_then(|v| v.as_bool())
            .unwrap_or(false);
        let chat = cfg
            .get("chat_template")
            .and_then(|v| v.as_str())
            .map(|t| ChatTemplate::new(t.to_string()));
        let kind = format!(
            "{} (tokenizer.json), {} tokens",
            model_kind(&tk),
            tk.get_vocab_size(true)
        );
        let (bos, eos, pad) = (
            token_id("bos_token"),
            token_id("eos_token"),
            token_id("pad_token"),
        );
        Ok(Self::assemble(
            tk,
            bos,
            eos,
            pad,
            add_bos,
            special_ids,
            chat,
            kind,
        ))
    }

    #[allow(clippy::too_many_arguments)]
    fn assemble(
        with_special: Tokenizer,
        bos: Option<u32>,
        eos: Option<u32>,
        pad: Option<u32>,
        add_bos: bool,
        mut special_ids: Vec<u32>,
        chat: Option<ChatTemplate>,
        kind: String,
    ) -> Self {
        special_ids.sort_unstable();
        let mut plain = with_special.clone();
        plain.set_encode_special_tokens(true);
        TextTokenizer {
            with_special,
            plain,
            bos,
            eos,
            pad,
            add_bos,
            special_ids,
            chat,
            kind,
        }
    }

    /// Token ids of `text`; special tokens written in it (e.g. `<|im_start|>`) become their
    /// ids. BOS is prepended when the model asks for it.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, TokenizerError> {
        self.encode_with(&self.with_special, text)
    }

    /// Like [`encode`](Self::encode) but special-token text stays plain text.
    pub fn encode_plain(&self, text: &str) -> Result<Vec<u32>, TokenizerError> {
        self.encode_with(&self.plain, text)
    }

    /// Tokens that continue a prompt (a label word, a training target): plain text and never a
    /// BOS, whatever the model adds at the start of a sequence (Gemma does).
    pub fn encode_continuation(&self, text: &str) -> Result<Vec<u32>, TokenizerError> {
        self.plain_ids(&self.plain, text)
    }

    fn encode_with(&self, tk: &Tokenizer, text: &str) -> Result<Vec<u32>, TokenizerError> {
        let mut ids = Vec::new();
        if self.add_bos
            && let Some(b) = self.bos
        {
            ids.push(b);
        }
        ids.extend(self.plain_ids(tk, text)?);
        Ok(ids)
    }

    fn plain_ids(&self, tk: &Tokenizer, text: &str) -> Result<Vec<u32>, TokenizerError> {
        let enc = tk
            .encode(text, false)
            .map_err(|e| TokenizerError::Run(e.to_string()))?;
        Ok(enc.get_ids().to_vec())
    }

    pub fn decode(&self, ids: &[u32], skip_special: bool) -> Result<String, TokenizerError> {
        self.with_special
            .decode(ids, skip_special)
            .map_err(|e| TokenizerError::Run(e.to_string()))
    }

    /// The vocabulary entry of `id` as stored (e.g. `Ġquick`).
    pub fn piece(&self, id: u32) -> String {
        self.with_special.id_to_token(id).unwrap_or_default()
    }

    pub fn token_id(&self, piece: &str) -> Option<u32> {
        self.with_special.token_to_id(piece)
    }

    pub fn vocab_size(&self) -> usize {
        self.with_special.get_vocab_size(true)
    }

    pub fn bos_id(&self) -> Option<u32> {
        self.bos
    }

    pub fn eos_id(&self) -> Option<u32> {
        self.eos
    }

    /// The id used to pad batches (never attended to): the file's pad token, else EOS, else 0.
    pub fn pad_id(&self) -> u32 {
        self.pad.or(self.eos).unwrap_or(0)
    }

    pub fn is_special(&self, id: u32) -> bool {
        self.special_ids.binary_search(&id).is_ok()
    }

    /// Ids that end a generation: EOS and every control token that marks a turn or a document
    /// end (a chat model writing `<|endoftext|>` is done too).
    pub fn stop_ids(&self) -> Vec<u32> {
        let mut ids: Vec<u32> = self.eos.into_iter().collect();
        for name in [
            "<|endoftext|>",
            "<|im_end|>",
            "</s>",
            "<|eot_id|>",
            "<|end_of_text|>",
        ] {
            if let Some(id) = self.token_id(name)
                && !ids.contains(&id)
            {
                ids.push(id);
            }
        }
        ids
    }

    /// The tokenizer in Hugging Face's `tokenizer.json` format.
    pub fn to_json(&self) -> Result<String, TokenizerError> {
        self.with_special
            .to_string(false)
            .map_err(|e| TokenizerError::Run(e.to_string()))
    }

    pub fn has_chat_template(&self) -> bool {
        self.chat.is_some()
    }

    /// Renders `messages` with the model's chat template, ending with the assistant header
    /// when `add_generation_prompt` is set.
    pub fn apply_chat(
        &self,
        messages: &[ChatMessage],
        add_generation_prompt: bool,
    ) -> Result<String, TokenizerError> {
        let chat = self.chat.as_ref().ok_or_else(|| {
            TokenizerError::Chat("this model has no chat template; use a plain prompt".into())
        })?;
        let piece = |id: Option<u32>| id.map(|i| self.piece(i)).unwrap_or_default();
        chat.render(
            messages,
            add_generation_prompt,
            &piece(self.bos),
            &piece(self.eos),
        )
        .map_err(TokenizerError::Chat)
    }

    /// A decoder that turns ids into text as they arrive, holding back incomplete UTF-8
    /// (one emoji may span several byte-level tokens).
    pub fn stream(&self, skip_special: bool) -> TokenStream<'_> {
        TokenStream {
            tokenizer: self,
            ids: Vec::new(),
            emitted: 0,
            skip_special,
        }
    }
}

fn model_kind(tk: &Tokenizer) -> &'static str {
    match tk.get_model() {
        tokenizers::ModelWrapper::BPE(_) => "BPE",
        tokenizers::ModelWrapper::WordPiece(_) => "WordPiece",
        tokenizers::ModelWrapper::WordLevel(_) => "WordLevel",
        tokenizers::ModelWrapper::Unigram(_) => "Unigram",
    }
}

/// The pre-tokenizer llama.cpp associates with a `tokenizer.ggml.pre` value.
fn pre_tokenizer(pre: &str) -> Result<PreTokenizerWrapper, String> {
    let byte_level = |use_regex| ByteLevel::new(false, true, use_regex).into();
    let split = |re: &str| -> Result<PreTokenizerWrapper, String> {
        Ok(Split::new(
            SplitPattern::Regex(re.to_string()),
            SplitDelimiterBehavior::Isolated,
            false,
        )
        .map_err(|e| e.to_string())?
        .into())
    };
    Ok(match pre {
        // SmolLM: every digit on its own, then GPT-2 byte-level splitting.
        "smollm" | "starcoder" | "refact" => {
            Sequence::new(vec![Digits::new(true).into(), byte_level(true)]).into()
        }
        "default" | "gpt-2" | "gpt2" => byte_level(true),
        "llama3" | "llama-bpe" | "smaug-bpe" => {
            Sequence::new(vec![split(LLAMA3_REGEX)?, byte_level(false)]).into()
        }
        "qwen2" | "deepseek-r1-qwen" => {
            Sequence::new(vec![split(QWEN2_REGEX)?, byte_level(false)]).into()
        }
        other => {
            return Err(format!(
                "unknown pre-tokenizer tokenizer.ggml.pre = '{other}' (known: smollm, \
                 starcoder, refact, default, gpt2, llama-bpe, llama3, smaug-bpe, qwen2)"
            ));
        }
    })
}

/// Incremental decoding for streaming text to the screen.
pub struct TokenStream<'a> {
    tokenizer: &'a TextTokenizer,
    ids: Vec<u32>,
    emitted: usize,
    skip_special: bool,
}

impl TokenStream<'_> {
    /// Adds a token and returns the text that became final with it (possibly empty while a
    /// multi-byte character is incomplete).
    pub fn push(&mut self, id: u32) -> String {
        self.ids.push(id);
        let text = self
            .tokenizer
            .decode(&self.ids, self.skip_special)
            .unwrap_or_default();
        // A trailing U+FFFD means the last character's bytes are not all here yet.
        if text.ends_with('\u{FFFD}') {
            return String::new();
        }
        let new = text.get(self.emitted..).unwrap_or_default().to_string();
        self.emitted = text.len();
        new
    }

    pub fn text(&self) -> String {
        self.tokenizer
            .decode(&self.ids, self.skip_special)
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentencepiece_merges_rank_by_score_then_longer_left_part() {
        let tokens: Vec<String> = ["<pad>", "a", "b", "c", "ab", "bc", "abc", "a b"]
            .map(String::from)
            .to_vec();
        let scores = [0.0, -1.0, -1.0, -1.0, -2.0, -3.0, -4.0, -5.0];
        let pair = |l: &str, r: &str| (l.to_string(), r.to_string());
        assert_eq!(
            merges_by_score(&tokens, &scores),
            [
                pair("a", "b"),
                pair("b", "c"),
                // `abc` splits two ways at the same score: the longer left part first.
                pair("ab", "c"),
                pair("a", "bc"),
            ],
            // "a b" has no split into two pieces of the vocabulary (" b" is not one).
        );
    }
}
