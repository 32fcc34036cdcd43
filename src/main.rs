fn main() {
    println!("seedforge: under construction");
}
