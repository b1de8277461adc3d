/** A model's name as `changes` and `records` accept it. */
export const MODEL_NAME = /^[A-Za-z][A-Za-z0-9_-]{0,62}$/;
