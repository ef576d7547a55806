/** The wire tags of ModelVersionInfo's fields (field number << 3 | wire type), as the hand-written encoder and decoder use them. */
export const MODEL_ID_TAG = (1 << 3) | 2;
export const VERSION_NUMBER_TAG = 2 << 3; // varint
export const CREATION_TIMESTAMP_TAG = (3 << 3) | 1; // fixed64
export const ARCHIVED_TAG = 4 << 3; // varint
export const DATA_HASH_TAG = (5 << 3) | 2;
export const DATA_SIZE_TAG = (6 << 3) | 1; // fixed64
export const USER_DATA_TAG = (7 << 3) | 2; // one map entry: key as field 1, value as field 2
export const ENTRY_KEY_TAG = (1 << 3) | 2;
export const ENTRY_VALUE_TAG = (2 << 3) | 2;
